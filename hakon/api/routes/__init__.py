"""One router per concern; `hakon.api.app` includes them all."""
