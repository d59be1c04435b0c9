"""docs/query.md shows the native metric tables exactly as the code declares them."""

from pathlib import Path

from hakon.query import views

DOC = (Path(__file__).parents[2] / "docs" / "query.md").read_text()


def test_native_metric_tables_match_the_code() -> None:
    assert views.markdown_table(views.NODE_METRICS, summed=False) in DOC
    assert views.markdown_table(views.CLUSTER_METRICS, summed=True) in DOC
