"""A tool that raises leaves its traceback where the user debugging it can read it, and
nowhere the model or the store sees it.

Before, the record showed ``JSONDecodeError: Expecting value ...`` and the traceback was gone:
nothing logged, nothing on the turn's result. Now ``r = %lash last`` holds it
(``r.tool_tracebacks[call_id]``, also ``r.tool_calls[i].traceback``), the ``lash_nb.tools``
logger gets it at INFO, both scrubbed of credentials like the one line, and lash_nb's own
frames (the call into the tool) are left out. The model's result and the stored record are
the one line, as before.
"""

from __future__ import annotations

import json

import pytest
from notebook_harness import KernelHarness

TOOL = '''import json, logging
from lash_nb import tool

seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())
logging.getLogger("lash_nb.tools").addHandler(Keep())
logging.getLogger("lash_nb.tools").setLevel(logging.INFO)

def _read(text):
    return json.loads(text)

@tool
def parse_config(text: str) -> str:
    """Parse a JSON config."""
    if text == "leak":
        raise RuntimeError("upstream said Authorization: Bearer sk-abcdefghijklmnopqrstuvwx")
    return str(_read(text))
'''


@pytest.mark.slow  # a real kernel
def test_a_failing_tools_traceback_is_on_the_last_result_and_logged_not_sent(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(TOOL)
        k.run("%lash open s --store s.duckdb")
        k.run("%lash turn use parse_config on 'not json'")
        k.run("r = %lash last\nc = r.tool_calls[0]")
        assert k.run("print(c.success, c.output)").stdout.strip() == (
            "False JSONDecodeError: Expecting value: line 1 column 1 (char 0)")
        tb = k.run("print(r.tool_tracebacks[c.call_id])").stdout
        assert tb.startswith("Traceback (most recent call last):"), tb
        assert "in parse_config" in tb and "return str(_read(text))" in tb, tb
        assert "in _read" in tb and "return json.loads(text)" in tb, tb
        assert tb.rstrip().endswith("json.decoder.JSONDecodeError: Expecting value: line 1 "
                                    "column 1 (char 0)"), tb
        assert "lash_nb/_runtime" not in tb and "lash_nb/_tools" not in tb, tb
        assert k.run("print(c.traceback == r.tool_tracebacks[c.call_id])").stdout.strip() == "True"
        logged = k.run("print(json.dumps(seen))").stdout
        assert any(m.startswith("tool 'parse_config' (call ") and "raised:\nTraceback" in m
                   and "in _read" in m for m in json.loads(logged)), logged
        # the model was sent the one line; the store keeps the one line
        sent = k.run("print([p.text for n in get_ipython().magics_manager.registry['LashMagics']"
                     ".ctx.bindings['s'].session.read_view().nodes() if n.message is not None "
                     "for p in n.message.parts if 'Traceback' in str(p)])").stdout.strip()
        assert sent == "[]"
        stored = k.run("n = %lash sql SELECT CAST(result AS VARCHAR) LIKE '%Traceback%' AS tb,"
                       " count(*) AS n FROM turns WHERE CAST(result AS VARCHAR) LIKE "
                       "'%JSONDecodeError: Expecting value%' GROUP BY tb\n"
                       "print(n.values.tolist())")
        assert stored.stdout.strip() == "[[False, 1]]", stored.stdout  # the line only
        # scrubbed as the one line is
        k.run("%lash turn use parse_config on 'leak'")
        k.run("r = %lash last\nc = r.tool_calls[0]")
        tb = k.run("print(r.tool_tracebacks[c.call_id])").stdout
        assert "RuntimeError: upstream said Authorization: [redacted]" in tb, tb
        assert "sk-abcdef" not in k.run("print(r.tool_tracebacks, c.output, seen)").stdout
