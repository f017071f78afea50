"""How every deploy command ends on an error: one line for the user, a traceback only for a bug.

    except Exception as exc:
        return report("deploy.stack", exc, (StackError, StageError))
"""

from __future__ import annotations

import sys


def report(prog: str, exc: Exception, expected: tuple[type[Exception], ...]) -> int:
    """Exit code 1 after one line for an error the command expects or an AWS error; re-raise anything
    else (a bug's traceback is worth more than a line)."""
    if isinstance(exc, expected):
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    if type(exc).__module__.startswith(("botocore", "boto3")):
        print(f"{prog}: error: AWS: {exc}", file=sys.stderr)
        return 1
    raise exc
