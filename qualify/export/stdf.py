"""Export a run as STDF V4 (binary, little-endian, CPU_TYPE 2) for yield and ATE analysis tools.

Each record is REC_LEN (U*2, bytes after the header), REC_TYP (U*1), REC_SUB (U*1), then its
fields. Records in order: FAR; MIR; a DTR per station-level step and measurement; per DUT in
slot order PIR, its PTRs and DTRs, PRR; a TSR per test; HBR and SBR per bin used; PCR; MRR.
No ATR: the file is written, not filtered. Field choices:

- MIR: SETUP_T = run start, START_T = first step start, STAT_NUM = 1 (stations are named, not
  numbered; the name is TSTR_TYP), MODE_COD = `Q` (quality control), LOT_ID = run lot,
  PART_TYP = JOB_NAM = plan, JOB_REV = plan version, NODE_NAM = host, OPER_NAM = operator,
  EXEC_TYP = `qualify`, EXEC_VER = software version, TEST_COD = `QUAL`, USER_TXT = run id,
  SETUP_ID = plan sha256, ROM_COD = git commit; SBLOT_ID and other optional strings empty.
- Sites: HEAD_NUM 1, SITE_NUM = the DUT's slot (1 when the slot is outside 1..255). Parts are
  written one after another, so PTRs always belong to the PIR/PRR pair around them.
- PTR: one per DUT measurement with a numeric reading (and per reading with neither value nor
  text, flagged RESULT invalid). TEST_NUM is numbered from 1 in order of first execution and
  is the same for a (stage, step, measurement) in every part; repeat iterations give the part
  several PTRs with that number. TEST_TXT = `stage/step/measurement`. TEST_FLG bit 7 = fail,
  bit 1 = no value; `marginal` is a pass (STDF has no such state; the other exports keep it).
  PARM_FLG bits 6 and 7 are set (a result equal to a limit passes, as qualify judges) and
  bit 3 or 4 when the result is above the high or below the low limit. OPT_FLAG always has
  bit 1 (reserved), bits 2 and 3 (no spec limits), plus bit 6 / bit 7 when the low / high
  limit is absent; scaling exponents are 0. Values beyond R*4 range become +/-infinity.
- Text readings: a DTR `stage[iteration]/step/measurement = 'text' [verdict]` inside the part;
  a DUT step that is not `pass` also gets a DTR with its status and message.
- PRR: PART_ID = DUT serial, PART_TXT = kind, model, firmware, slot; HARD_BIN 1 pass, 2 fail,
  3 error, 4 aborted, 5 skipped, 6 anything else (e.g. still running); SOFT_BIN equals it,
  except 11 for a pass with a marginal reading. PART_FLG bit 3 = failed; a part that was not
  judged (error, aborted, skipped, running) has bit 4 (no pass/fail indication) and, except
  skipped, bit 2 (abnormal end). NUM_TEST = its PTR count; TEST_T = its span of run time in ms.
- TSR, HBR, SBR, PCR: summaries over all sites (HEAD_NUM 255). TSR gives EXEC_CNT, FAIL_CNT,
  min, max, sum and sum of squares of the valid results; HBIN_PF/SBIN_PF are P, F, or space
  for bins whose parts were not judged. PCR ABRT_CNT counts error and aborted parts.
- MRR: FINISH_T = run end (or last step end), USR_DESC = run status, EXC_DESC = run message.

Strings are ASCII as STDF requires: `°` becomes `deg`, `µ` becomes `u`, other characters become
Python escapes (`\\xe9`); each C*n is cut to 255 bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from qualify.export.common import atomic_path, describe_dut, duts, epoch_s, file_target, iter_steps, open_run
from qualify.store.db import Store

CPU_TYPE = 2
STDF_VER = 4
ALL_SITES = 255
_R4_MAX = 3.4028234663852886e38

HARD_BINS: dict[str, tuple[int, str]] = {
    "pass": (1, "P"),
    "fail": (2, "F"),
    "error": (3, " "),
    "aborted": (4, " "),
    "skipped": (5, " "),
}
"""DUT verdict -> (hard bin, pass/fail code); any other verdict is bin 6 with code space."""
OTHER_BIN = 6
MARGINAL_SOFT_BIN = 11

# PTR flag bits (STDF V4, Parametric Test Record).
TEST_FLG_NO_RESULT = 0x02
TEST_FLG_NO_PASS_FAIL = 0x40
TEST_FLG_FAIL = 0x80
PARM_FLG_HIGH = 0x08
PARM_FLG_LOW = 0x10
PARM_FLG_EQUAL_PASSES = 0xC0
OPT_FLAG_BASE = 0x02 | 0x04 | 0x08
OPT_FLAG_NO_LOW = 0x40
OPT_FLAG_NO_HIGH = 0x80
# PRR PART_FLG bits.
PART_ABNORMAL = 0x04
PART_FAILED = 0x08
PART_NO_PASS_FAIL = 0x10

_ASCII_FOR = {"°": "deg", "µ": "u", "μ": "u", "Ω": "Ohm", "²": "2", "³": "3"}


# -- field encoders (STDF V4 data types) -----------------------------------------------------


def u1(v: int) -> bytes:
    """Encode U*1."""
    return struct.pack("<B", v)


def u2(v: int) -> bytes:
    """Encode U*2."""
    return struct.pack("<H", v)


def u4(v: int) -> bytes:
    """Encode U*4."""
    return struct.pack("<I", v)


def i1(v: int) -> bytes:
    """Encode I*1."""
    return struct.pack("<b", v)


def i2(v: int) -> bytes:
    """Encode I*2."""
    return struct.pack("<h", v)


def r4(v: float) -> bytes:
    """Encode R*4; a value beyond single-precision range becomes an infinity of its sign."""
    if math.isfinite(v) and abs(v) > _R4_MAX:
        v = math.copysign(math.inf, v)
    return struct.pack("<f", v)


def c1(ch: str) -> bytes:
    """Encode C*1 (one ASCII character; space when missing)."""
    data = ascii_text(ch)[:1]
    return data or b" "


def cn(text: Any) -> bytes:
    """Encode C*n: a count byte then up to 255 ASCII bytes; None is the empty string."""
    data = ascii_text(text)[:255]
    return u1(len(data)) + data


def bn(data: bytes) -> bytes:
    """Encode B*n: a count byte then up to 255 bytes."""
    return u1(len(data[:255])) + data[:255]


def ascii_text(value: Any) -> bytes:
    """Return text as ASCII bytes: known unit symbols spelled out, anything else escaped."""
    text = "" if value is None else str(value)
    for symbol, spelled in _ASCII_FOR.items():
        text = text.replace(symbol, spelled)
    return text.encode("ascii", "backslashreplace")


def record(typ: int, sub: int, *fields: bytes) -> bytes:
    """Return one record: REC_LEN, REC_TYP, REC_SUB and the encoded fields."""
    body = b"".join(fields)
    if len(body) > 0xFFFF:
        raise ValueError(f"STDF record {typ}/{sub} is {len(body)} bytes; the limit is 65535")
    return struct.pack("<HBB", len(body), typ, sub) + body


def _cap(v: int, top: int) -> int:
    return max(0, min(int(v), top))


# -- export ----------------------------------------------------------------------------------


@dataclass
class _Test:
    number: int
    text: str
    stage: str
    step: str
    executed: int = 0
    failed: int = 0
    valid: int = 0
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    squares: float = 0.0


@dataclass
class _Bin:
    pf: str
    name: str
    count: int = 0


def write_stdf(db: Path, run_id: str, output: Path) -> Path:
    """Write a run as an STDF V4 file to `output` (a folder gets `RUN_ID.stdf`); return the file."""
    with open_run(db, run_id) as (store, run):
        target = file_target(output, run["id"], ".stdf")
        with atomic_path(target) as tmp, tmp.open("wb") as fh:
            _write(fh, store, run)
    return target


def _is_ptr(m: dict[str, Any]) -> bool:
    return m["value"] is not None or m["text"] is None


def _write(fh: IO[bytes], store: Store, run: dict[str, Any]) -> None:
    rid = run["id"]
    tests = _number_tests(store, rid)
    first_start = store.rows(
        "SELECT MIN(started_at) AS t, MAX(ended_at) AS e FROM steps WHERE run_id = ?", (rid,)
    )[0]
    fh.write(record(0, 10, u1(CPU_TYPE), u1(STDF_VER)))
    fh.write(_mir(run, first_start["t"]))
    for step, measurements in iter_steps(store, rid, station=True):
        where = f"station {step['stage']}[{step['iteration']}]/{step['name']}"
        fh.write(_dtr(f"{where} {step['status']}" + (f": {step['message']}" if step["message"] else "")))
        for m in measurements:
            fh.write(_dtr(f"{where}/{m['name']} = {_shown(m)} [{m['verdict']}]"))
    parts = duts(store, rid)
    hard: dict[int, _Bin] = {}
    soft: dict[int, _Bin] = {}
    for dut in parts:
        hbin, sbin, pf = _write_part(fh, store, rid, dut, tests)
        name = dut["verdict"] if dut["verdict"] in HARD_BINS else "other"
        hard.setdefault(hbin, _Bin(pf, name)).count += 1
        soft.setdefault(sbin, _Bin(pf, "pass_marginal" if sbin == MARGINAL_SOFT_BIN else name)).count += 1
    for test in tests.values():
        fh.write(_tsr(test))
    for sub, bins in ((40, hard), (50, soft)):
        for number, b in sorted(bins.items()):
            fh.write(record(1, sub, u1(ALL_SITES), u1(0), u2(number), u4(b.count), c1(b.pf), cn(b.name)))
    verdicts = [d["verdict"] for d in parts]
    fh.write(
        record(
            1,
            30,
            u1(ALL_SITES),
            u1(0),
            u4(len(parts)),
            u4(0),
            u4(sum(v in ("error", "aborted") for v in verdicts)),
            u4(verdicts.count("pass")),
            u4(0xFFFFFFFF),
        )
    )
    finish = epoch_s(run["ended_at"]) or epoch_s(first_start["e"]) or 0
    fh.write(record(1, 20, u4(_cap(finish, 0xFFFFFFFF)), c1(" "), cn(run["status"]), cn(run.get("message"))))


def _number_tests(store: Store, run_id: str) -> dict[tuple[str, str, str], _Test]:
    rows = store.rows(
        "SELECT s.stage, s.name AS step, m.name AS measurement, MIN(s.seq) AS first_seq, "
        "MIN(m.rowid) AS first_row FROM measurements m JOIN steps s ON s.id = m.step_id "
        "WHERE s.run_id = ? AND s.dut_serial IS NOT NULL AND (m.value IS NOT NULL OR m.text IS NULL) "
        "GROUP BY s.stage, s.name, m.name ORDER BY first_seq, first_row",
        (run_id,),
    )
    return {
        (r["stage"], r["step"], r["measurement"]): _Test(
            number, f"{r['stage']}/{r['step']}/{r['measurement']}", r["stage"], r["step"]
        )
        for number, r in enumerate(rows, start=1)
    }


def _mir(run: dict[str, Any], first_step_at: str | None) -> bytes:
    setup = _cap(epoch_s(run["started_at"]) or 0, 0xFFFFFFFF)
    start = _cap(epoch_s(first_step_at) or setup, 0xFFFFFFFF)
    strings = (
        run["lot"],  # LOT_ID
        run["plan"],  # PART_TYP
        run["host"],  # NODE_NAM
        run["station"],  # TSTR_TYP
        run["plan"],  # JOB_NAM
        run["plan_version"],  # JOB_REV
        "",  # SBLOT_ID
        run["operator"],  # OPER_NAM
        "qualify",  # EXEC_TYP
        run["software_version"],  # EXEC_VER
        "QUAL",  # TEST_COD
        "",  # TST_TEMP: the chamber setpoint changes between stages
        run["id"],  # USER_TXT
        "",  # AUX_FILE
        "",  # PKG_TYP
        "",  # FAMLY_ID
        "",  # DATE_COD
        "",  # FACIL_ID
        "",  # FLOOR_ID
        "",  # PROC_ID
        "",  # OPER_FRQ
        "",  # SPEC_NAM
        "",  # SPEC_VER
        "",  # FLOW_ID
        run["plan_sha256"],  # SETUP_ID
        "",  # DSGN_REV
        "",  # ENG_ID
        run["git_commit"],  # ROM_COD
        "",  # SERL_NUM
        "",  # SUPR_NAM
    )
    return record(
        1,
        10,
        u4(setup),
        u4(start),
        u1(1),  # STAT_NUM
        c1("Q"),  # MODE_COD
        c1(" "),  # RTST_COD
        c1(" "),  # PROT_COD
        u2(0xFFFF),  # BURN_TIM: missing
        c1(" "),  # CMOD_COD
        *(cn(s) for s in strings),
    )


def _write_part(
    fh: IO[bytes], store: Store, run_id: str, dut: dict[str, Any], tests: dict[tuple[str, str, str], _Test]
) -> tuple[int, int, str]:
    slot = dut["slot"]
    site = slot if isinstance(slot, int) and 1 <= slot <= 255 else 1
    fh.write(record(5, 10, u1(1), u1(site)))
    executed = 0
    marginal = False
    t_first, t_last = math.inf, -math.inf
    for step, measurements in iter_steps(store, run_id, dut=dut["serial"]):
        t_first, t_last = min(t_first, step["t_start"]), max(t_last, step["t_end"])
        where = f"{step['stage']}[{step['iteration']}]/{step['name']}"
        if step["status"] != "pass":
            fh.write(_dtr(f"{where} {step['status']}" + (f": {step['message']}" if step["message"] else "")))
        for m in measurements:
            marginal = marginal or m["verdict"] == "marginal"
            if _is_ptr(m):
                test = tests[(step["stage"], step["name"], m["name"])]
                fh.write(_ptr(test, site, m))
                executed += 1
            else:
                fh.write(_dtr(f"{where}/{m['name']} = {_shown(m)} [{m['verdict']}]"))
    verdict = dut["verdict"]
    hbin, pf = HARD_BINS.get(verdict, (OTHER_BIN, " "))
    sbin = MARGINAL_SOFT_BIN if verdict == "pass" and marginal else hbin
    if verdict == "pass":
        flags = 0
    elif verdict == "fail":
        flags = PART_FAILED
    elif verdict == "skipped":
        flags = PART_NO_PASS_FAIL
    else:
        flags = PART_ABNORMAL | PART_NO_PASS_FAIL
    test_ms = _cap(round((t_last - t_first) * 1000), 0xFFFFFFFF) if t_last >= t_first else 0
    fh.write(
        record(
            5,
            20,
            u1(1),
            u1(site),
            u1(flags),
            u2(_cap(executed, 0xFFFF)),
            u2(hbin),
            u2(sbin),
            i2(-32768),  # X_COORD: not a wafer
            i2(-32768),  # Y_COORD
            u4(test_ms),
            cn(dut["serial"]),
            cn(describe_dut(dut)),
            bn(b""),
        )
    )
    return hbin, sbin, pf


def _ptr(test: _Test, site: int, m: dict[str, Any]) -> bytes:
    value, low, high = m["value"], m["low"], m["high"]
    test_flg = 0
    if value is None:
        test_flg |= TEST_FLG_NO_RESULT
    if m["verdict"] == "fail":
        test_flg |= TEST_FLG_FAIL
    elif m["verdict"] not in ("pass", "marginal"):
        test_flg |= TEST_FLG_NO_PASS_FAIL
    parm_flg = PARM_FLG_EQUAL_PASSES
    if value is not None and high is not None and value > high:
        parm_flg |= PARM_FLG_HIGH
    if value is not None and low is not None and value < low:
        parm_flg |= PARM_FLG_LOW
    opt_flag = OPT_FLAG_BASE
    if low is None:
        opt_flag |= OPT_FLAG_NO_LOW
    if high is None:
        opt_flag |= OPT_FLAG_NO_HIGH
    test.executed += 1
    test.failed += bool(test_flg & TEST_FLG_FAIL)
    if value is not None and math.isfinite(value):
        test.valid += 1
        test.low, test.high = min(test.low, value), max(test.high, value)
        test.total += value
        test.squares += value * value
    return record(
        15,
        10,
        u4(test.number),
        u1(1),
        u1(site),
        u1(test_flg),
        u1(parm_flg),
        r4(0.0 if value is None else value),
        cn(test.text),
        cn(""),  # ALARM_ID
        u1(opt_flag),
        i1(0),  # RES_SCAL
        i1(0),  # LLM_SCAL
        i1(0),  # HLM_SCAL
        r4(0.0 if low is None else low),
        r4(0.0 if high is None else high),
        cn(m["unit"]),
        cn(""),  # C_RESFMT
        cn(""),  # C_LLMFMT
        cn(""),  # C_HLMFMT
        r4(0.0),  # LO_SPEC: none (OPT_FLAG bit 2)
        r4(0.0),  # HI_SPEC: none (OPT_FLAG bit 3)
    )


def _tsr(test: _Test) -> bytes:
    # Bits 3, 6 and 7 are reserved and must be 1; bit 2: no average test time is kept.
    opt_flag = 0x08 | 0x40 | 0x80 | 0x04
    if not test.valid:
        opt_flag |= 0x01 | 0x02 | 0x10 | 0x20
    return record(
        10,
        30,
        u1(ALL_SITES),
        u1(0),
        c1("P"),
        u4(test.number),
        u4(test.executed),
        u4(test.failed),
        u4(0),  # ALRM_CNT
        cn(test.text),
        cn(test.stage),  # SEQ_NAME
        cn(test.step),  # TEST_LBL
        u1(opt_flag),
        r4(0.0),  # TEST_TIM
        r4(test.low if test.valid else 0.0),
        r4(test.high if test.valid else 0.0),
        r4(test.total if test.valid else 0.0),
        r4(test.squares if test.valid else 0.0),
    )


def _dtr(text: str) -> bytes:
    return record(50, 30, cn(text))


def _shown(m: dict[str, Any]) -> str:
    if m["text"] is not None:
        return repr(m["text"])
    if m["value"] is None:
        return "(no value)"
    unit = f" {m['unit']}" if m["unit"] else ""
    return f"{m['value']:.10g}{unit}"


def records(data: bytes) -> Iterable[tuple[int, int, bytes]]:
    """Yield (REC_TYP, REC_SUB, body) of each record in little-endian STDF bytes."""
    offset = 0
    while offset + 4 <= len(data):
        length, typ, sub = struct.unpack_from("<HBB", data, offset)
        yield typ, sub, data[offset + 4 : offset + 4 + length]
        offset += 4 + length
