"""Requests by pull request: which request files a change touches, their plan, and their apply.

A request (`stacks/<team>.yaml`) is data. It is read with `yaml.safe_load` and validated by
the pydantic model in spec.py; nothing in it, nor anything else from the change, is executed.
Git is asked only for names and blobs (`merge-base`, `diff --name-status`, `cat-file blob`).

Removing a request file never destroys a team's environment on its own: apply refuses that
team unless it is given `allow_destroy`.

Modules, each importing only those after it: `markdown` (the plan as a pull-request comment),
`apply` and `plan` (the orchestration per team), `costs` and `fleet` (which teams a program change
affects, from offline runs of both code versions in `fleet_worker` processes), `notable` (what a reviewer sees changed in a
request), `batch` (teams run side by side), `changes` (what a change touches, from git or
explicit files).
"""
