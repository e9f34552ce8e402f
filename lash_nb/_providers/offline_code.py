"""The offline model's code-mode rule (documented in ``offline.py``): explore, then answer.

Step 1 (no cell run yet for the prompt): a cell that prints the name, shape and columns of
each DataFrame in the sandbox. Step 2: a cell that answers the question in pandas: the first
aggregate word in it (mean / average, sum / total, max / maximum / highest, min / minimum /
lowest, count / how many, median) over the first numeric column it names (as a whole word,
underscores read as spaces), per the column named right after ``by`` / ``per`` / ``for
each`` when there is one; it submits the number, or a dict per group. With no aggregate or
no such column it submits the DataFrame's row count and columns. A step-2 cell that failed
is answered by submitting the error's last line.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._core.code_mode import CLOSE_TAG, CODE_PROMPT_HEAD, OPEN_TAG
from .._core.llm import LlmRequest
from .._core.records import Message, Role

_EXPLORE = """import pandas as pd
frames = {k: v for k, v in globals().items()
          if isinstance(v, pd.DataFrame) and not k.startswith('_')}
for _name, _frame in frames.items():
    print(_name, _frame.shape, list(_frame.columns))
if not frames:
    print('no DataFrame is shared')"""

_ANSWER = """import re
question = {question!r}.lower()
words = {{'mean': 'mean', 'average': 'mean', 'sum': 'sum', 'total': 'sum', 'max': 'max',
         'maximum': 'max', 'highest': 'max', 'min': 'min', 'minimum': 'min', 'lowest': 'min',
         'count': 'count', 'how many': 'count', 'median': 'median'}}
found = [(m.start(), f) for w, f in words.items()
         for m in [re.search(r'\\b' + w + r'\\b', question)] if m]
agg = min(found)[1] if found else None
_frame = next(iter(frames.values()))
def named(col):
    return re.search(r'\\b' + re.escape(str(col).lower().replace('_', ' ')) + r'\\b',
                     question.replace('_', ' '))
numeric = [c for c in _frame.columns if pd.api.types.is_numeric_dtype(_frame[c]) and named(c)]
by = None
for c in _frame.columns:
    if re.search(r'\\b(by|per|for each)\\s+' + re.escape(str(c).lower()) + r'\\b', question):
        by = c
if agg and (numeric or agg == 'count'):
    col = numeric[0] if numeric else _frame.columns[0]
    result = _frame.groupby(by)[col].agg(agg) if by is not None else _frame[col].agg(agg)
    value = ({{str(k): v.item() if hasattr(v, 'item') else v for k, v in result.items()}}
             if by is not None else (result.item() if hasattr(result, 'item') else result))
    print(value)
    submit(value)
else:
    submit(f'{{len(_frame)}} rows; columns: {{", ".join(map(str, _frame.columns))}}')"""


def is_code_request(request: LlmRequest) -> bool:
    return (request.system_prompt or "").startswith(CODE_PROMPT_HEAD)


def code_reply(messages: Sequence[Message]) -> str:
    """The offline model's reply in code mode (see the module docstring)."""
    start = max((i for i, m in enumerate(messages)
                 if m.role is Role.USER and m.origin in (None, "queued_input")),
                default=0)
    question = messages[start].text() if messages else ""
    seen = [m.text() for m in messages[start + 1:] if m.origin == "code_observation"]
    if not seen:
        return _cell("First I look at the data.", _EXPLORE)
    if len(seen) >= 2 or "[error]" in seen[-1]:
        last = seen[-1].strip().splitlines()[-1] if seen[-1].strip() else "no output"
        return _cell("The cell failed; I report its error.", f"submit({last!r})")
    return _cell("Now I compute the answer.", _ANSWER.format(question=question))


def _cell(prose: str, code: str) -> str:
    return f"{prose}\n{OPEN_TAG}\n{code}\n{CLOSE_TAG}\n"


__all__ = ["code_reply", "is_code_request"]
