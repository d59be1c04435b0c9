from hakon.api.ratelimit import TokenBucketLimiter


def test_bucket_allows_burst_then_refuses_then_refills() -> None:
    limiter = TokenBucketLimiter(rate=2.0, burst=3)
    decisions = [limiter.take("a", now=100.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == 0.5
    assert decisions[-1].limit == 3
    assert decisions[-1].reset_at == 102  # 3 tokens at 2/s
    assert limiter.take("a", now=100.6).allowed  # refilled one
    assert limiter.take("b", now=100.6).remaining == 2  # buckets are per key


def test_bucket_never_exceeds_its_size() -> None:
    limiter = TokenBucketLimiter(rate=1000.0, burst=5)
    limiter.take("a", now=0.0)
    assert limiter.take("a", now=1000.0).remaining == 4
