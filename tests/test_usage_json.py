"""``TokenUsage.to_json`` spells its buckets out (a turn makes ~7): the same keys, in the
order of ``BUCKETS`` (a log row's text depends on it), with each bucket's own value."""

from lash_nb._core.usage import BUCKETS, TokenUsage


def test_usage_json_is_every_bucket_in_order():
    usage = TokenUsage(input_tokens=11, output_tokens=22, cache_read_input_tokens=33,
                       cache_write_input_tokens=44, reasoning_output_tokens=55)
    got = usage.to_json()
    assert list(got) == list(BUCKETS)
    assert got == {"input_tokens": 11, "output_tokens": 22, "cache_read_input_tokens": 33,
                   "cache_write_input_tokens": 44, "reasoning_output_tokens": 55}
    assert TokenUsage.from_json(got) == usage
    assert usage.totals_json()["total_tokens"] == 11 + 22 + 33 + 44
