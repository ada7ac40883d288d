from vzbackup.repo.backends.limits import RateLimited, TokenBucket

from .backend_factories import local_backend


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_token_bucket_averages_to_its_rate():
    t = FakeTime()
    bucket = TokenBucket(1000, clock=t.clock, sleep=t.sleep)
    for _ in range(50):
        bucket.take(200)  # 10,000 bytes at 1,000/s: ~9 s after the first second's burst
    assert 8.5 <= t.now <= 10.5


def test_rate_limited_backend_passes_everything_through(request, tmp_path):
    inner = local_backend(request, tmp_path).backend
    limited = RateLimited(inner, 10_000_000)
    limited.put("a/b", b"data")
    assert limited.get("a/b") == b"data" and limited.stat("a/b").size == 4
    assert [i.key for i in limited.list("a/")] == ["a/b"]
    limited.delete("a/b")
    limited.flush()
    assert inner.stat("a/b") is None
