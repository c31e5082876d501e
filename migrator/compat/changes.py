"""The kinds of signature change, which direction of a rolling deploy each breaks, and the transitional recipe
that makes a breaking one safe (the method of seeds/safely-deploy-job-payload-changes.txt)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    # During a rolling deploy both happen: workers on the new code run payloads the old code wrote (case 2 of
    # the seed), and workers still on the old code run payloads the new code writes (case 1).
    OLD_ON_NEW = "old-payloads-on-new-code"
    NEW_ON_OLD = "new-payloads-on-old-code"


class ChangeKind(StrEnum):
    NEW_REQUIRED = "new-required-param"
    REMOVED_PARAM = "removed-param"
    RENAMED_PARAM = "renamed-param"
    REORDERED = "reordered-positional-params"
    CHANGED_KIND = "changed-kind"
    REMOVED_DEFAULT = "removed-default"
    DELETED_JOB = "deleted-job"
    RENAMED_JOB = "renamed-job"
    NEW_OPTIONAL = "new-optional-param"
    ADDED_DEFAULT = "added-default"
    ANNOTATION = "changed-annotation"
    NEW_JOB = "new-job"


RECIPES = {
    ChangeKind.NEW_REQUIRED: "give it a default, deploy, then make it required in a second deploy",
    ChangeKind.REMOVED_PARAM: "keep the parameter with a default and ignore it (or take **kwargs), deploy, stop "
                              "passing it, drain the old payloads, then remove it in a second deploy",
    ChangeKind.RENAMED_PARAM: "accept both names (new name added with a default, old name kept with a default), "
                              "deploy, switch callers to the new name, drain, then drop the old name",
    ChangeKind.REORDERED: "keep the positional order (add parameters at the end); or have callers pass keywords, "
                          "deploy, drain the positional payloads, then reorder",
    ChangeKind.CHANGED_KIND: "accept both calling styles (positional-or-keyword) for one deploy, switch callers, "
                             "drain, then narrow the kind",
    ChangeKind.REMOVED_DEFAULT: "keep the default, make every caller pass the argument, deploy, drain, then "
                                "remove the default in a second deploy",
    ChangeKind.DELETED_JOB: "stop enqueuing, drain, then delete",
    ChangeKind.RENAMED_JOB: "keep the old name as an alias calling the new one until the old name is drained "
                            "(`migrator drain-check --job {old}`)",
}
NOTES = {  # safe changes that still ask for an order of deploys
    ChangeKind.NEW_OPTIONAL: "safe; pass it only once every worker runs this code",
    ChangeKind.NEW_JOB: "safe; enqueue it only once every worker runs this code",
    ChangeKind.ADDED_DEFAULT: "safe",
    ChangeKind.ANNOTATION: "safe for binding; the new backend must still carry the values (see `compat scan`)",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the locked signature and the code; `breaks` empty means safe."""

    kind: ChangeKind
    job_name: str
    detail: str
    breaks: tuple[Direction, ...] = ()
    param: str | None = None
    old_job: str | None = None  # for a renamed job: the name in the lock file

    @property
    def breaking(self) -> bool:
        return bool(self.breaks)

    @property
    def recipe(self) -> str:
        if not self.breaking:
            return NOTES.get(self.kind, "safe")
        return RECIPES[self.kind].format(old=self.old_job or self.job_name)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "job": self.job_name, "param": self.param, "old_job": self.old_job,
                "breaking": self.breaking, "breaks": [d.value for d in self.breaks], "detail": self.detail,
                "recipe": self.recipe}

    def line(self) -> str:
        where = f" ({', '.join(d.value for d in self.breaks)})" if self.breaks else ""
        return f"{self.job_name}: {self.kind.value}: {self.detail}{where}"


def directions(old_on_new: bool, new_on_old: bool) -> tuple[Direction, ...]:
    return tuple(d for d, yes in ((Direction.OLD_ON_NEW, old_on_new), (Direction.NEW_ON_OLD, new_on_old)) if yes)
