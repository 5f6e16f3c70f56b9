"""What the run record holds of a run's limits (ops/admission.py, ops/deadlines.py): its admission group,
its deadline, whether the deadline fired, and the run's own error. Encoded and decoded here only;
``records.new_run`` writes them, ``records.RunRecord`` reads them, and the Lua scripts read ``adm``
(``_common.lua`` finish_run), ``dl`` and ``dlx`` and write ``dlx`` and ``err`` (``halt.lua``)."""

from __future__ import annotations

from dataclasses import dataclass

from wfcelery.tracker.states import RunStatus

#: Run-record fields of active-run limits and deadlines: the admission group ``<group id>|<limit>``
#: (finish_run returns it: the run's end admits the next QUEUED run), the deadline (ms, Redis's clock),
#: whether that deadline fired (a retry then runs without it), and the run's own error (JSON; set when a
#: deadline fails it).
ADMISSION_FIELD, DEADLINE_FIELD, DEADLINE_FIRED_FIELD, RUN_ERROR_FIELD = "adm", "dl", "dlx", "err"


@dataclass(frozen=True)
class Admission:
    """A run's admission group (ops/admission.py): its id and the limit its workflow had at submit."""

    group: str
    limit: int

    def encode(self) -> str:
        return f"{self.group}|{self.limit}"

    @classmethod
    def decode(cls, raw: str) -> Admission:
        group, _, limit = raw.rpartition("|")
        return cls(group, int(limit))


@dataclass(frozen=True)
class RunLimitFields:
    """What :func:`new_run` writes of a run's limits: QUEUED or not, its admission group, its deadline."""

    queued: bool = False
    admission: Admission | None = None
    deadline_ms: int | None = None

    def fields(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        if self.queued:
            out["status"] = RunStatus.QUEUED.value
        if self.admission is not None:
            out[ADMISSION_FIELD] = self.admission.encode()
        if self.deadline_ms is not None:
            out[DEADLINE_FIELD] = self.deadline_ms
        return out
