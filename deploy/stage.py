"""`make deploy STAGE=S`: from an empty account to a running stage in one run, a no-op on the second,
and the same from any operator's fresh clone.

    python -m deploy.stage --stage dev [--dry-run]

The order matters:
1. the stage's deploy lock (deploy/deploy_lock.py): a second deploy of the stage is refused, naming who runs it;
2. the stage's stack (deploy/stack.py): site bucket, distribution, alarms, the artifact bucket; it writes the
   site function's SITE_BUCKET/SITE_DISTRIBUTION_ID and policy from the stack's outputs, so
3. the app stack (deploy/app_stack.py: chalice package with the stage's runtime, the code uploaded once, a change
   set on `predictions-<stage>-app`) deploys the functions with the right settings and the Regional API;
4. the stage stack again, with the API's domain read from the app stack: the distribution's /api/* origin
   (changes something only on the first deploy);
5. the prewarm, 6. the predictions bucket's events, 7. the site's files (sync + targeted invalidation);
8. the lock released.
Each step stops the deploy on failure with the step that failed; the lock is released then too. A deploy that
crashes or is interrupted leaves the lock held: its stacks may still be changing (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _switches(stage: str) -> tuple[bool, bool]:
    from chalice_app.config.stage_file import stage_environment
    from deploy.stack import switches

    return switches(stage, stage_environment(stage))


def steps(stage: str, python: str = sys.executable, warmer_enabled: bool | None = None,
          site_rebuild_enabled: bool | None = None, release: str | None = None) -> list[tuple[str, list[str]]]:
    if warmer_enabled is None or site_rebuild_enabled is None:
        warmer_on, site_on = _switches(stage)
        warmer_enabled = warmer_on if warmer_enabled is None else warmer_enabled
        site_rebuild_enabled = site_on if site_rebuild_enabled is None else site_rebuild_enabled
    stack = [python, "-m", "deploy.stack", "--stage", stage]
    lock = [python, "-m", "deploy.deploy_lock", "--stage", stage]
    plan = [("take the stage's deploy lock", [*lock, "--acquire"]),
            ("create or update the stage stack (site, CDN, alarms, artifacts)", stack),
            ("deploy the API and its functions (the app stack)",
             [python, "-m", "deploy.app_stack", "--stage", stage, *(["--release", release] if release else [])]),
            ("point the distribution's /api/* at the Regional API", stack)]
    if warmer_enabled:  # a stage without a warmer has nothing to prewarm with
        plan.append(("prewarm the API", [python, "-m", "chalice_app.warming.prewarm", "--stage", stage]))
    if site_rebuild_enabled:  # the site function's rule sees the pointer only through EventBridge
        plan.append(("send the predictions bucket's events to EventBridge",
                     [python, "-m", "deploy.bucket_events", "--stage", stage]))
    plan.append(("build and publish the site", [python, "build_site.py", "--stage", stage, "--publish"]))
    plan.append(("release the stage's deploy lock", [*lock, "--release"]))
    return plan


def remove_bytecode() -> None:
    """vendor/chalice_app is a symlink: bytecode caches beside the sources would ship in the zip."""
    for folder, subfolders, _ in os.walk(os.path.join(PROJECT_DIR, "chalice_app")):
        if "__pycache__" in subfolders:
            shutil.rmtree(os.path.join(folder, "__pycache__"), ignore_errors=True)


Runner = Callable[[Sequence[str]], int]


def _run(command: Sequence[str]) -> int:
    return subprocess.run(list(command), cwd=PROJECT_DIR, check=False).returncode


def _shown(command: Sequence[str]) -> str:
    return " ".join([os.path.basename(command[0]), *command[1:]])


def deploy(stage: str, run: Runner = _run, say: Callable[[str], None] = print, release: str | None = None) -> int:
    plan = steps(stage, release=release)
    remove_bytecode()
    release_what, release = plan[-1]
    for number, (what, command) in enumerate(plan, 1):
        say(f"[{number}/{len(plan)}] {what}: {_shown(command)}")
        try:
            code = run(command)
        except KeyboardInterrupt:
            say(f"deploy of stage {stage} interrupted at step {number}/{len(plan)} ({what}): the deploy lock stays "
                f"held, as its stacks may still be changing; when they are not, `python -m deploy.deploy_lock "
                f"--stage {stage} --break`")
            return 130
        if code != 0:
            if 1 < number < len(plan):  # the lock is ours: a clean failure gives it back
                say(f"[{len(plan)}/{len(plan)}] {release_what}: {_shown(release)}")
                if run(release) != 0:
                    say(f"the deploy lock of stage {stage} could not be released: "
                        f"`python -m deploy.deploy_lock --stage {stage} --show`")
            say(f"deploy of stage {stage} stopped at step {number}/{len(plan)} ({what}): exit code {code}; "
                "the steps before it stay deployed, fix the cause and run `make deploy` again")
            return code
    say(f"stage {stage} deployed: stack, API, warmer, site and its rebuild on publish")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.stage",
                                description="Deploy a stage: lock, stage stack, app stack, stage stack, prewarm, "
                                            "events, site, unlock.")
    p.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
    p.add_argument("--dry-run", action="store_true", help="print the steps without running them")
    p.add_argument("--release", metavar="DIR", help="deploy the app from this release (make release) instead of "
                                                     "packaging it: the same build on every stage")
    args = p.parse_args(argv)
    if args.dry_run:
        plan = steps(args.stage, release=args.release)
        for number, (what, command) in enumerate(plan, 1):
            print(f"[{number}/{len(plan)}] {what}: {' '.join(command)}")
        return 0
    return deploy(args.stage, release=args.release)


if __name__ == "__main__":
    sys.exit(main())
