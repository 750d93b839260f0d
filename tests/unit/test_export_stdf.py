"""STDF V4 export, read back with pystdf (an independent reader): records, parts, flags, values, limits."""

from __future__ import annotations

import math
import struct
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from pystdf.Importer import STDF2Dict

from qualify.export import export_run
from qualify.export.common import epoch_s
from qualify.export.stdf import records
from tests.unit.export_db import DIMM_SN, ERROR_SN, HUGE, PASS_SN, RUN_ID, SERIALS, WEIRD, build, sql

WEIRD_ASCII = WEIRD.encode("ascii", "backslashreplace").decode("ascii")
PART_IDS = [PASS_SN, WEIRD_ASCII, ERROR_SN, DIMM_SN]

# Numeric DUT readings become PTRs; text-only readings become DTRs.
PTR_WHERE = "s.run_id = ? AND s.dut_serial IS NOT NULL AND (m.value IS NOT NULL OR m.text IS NULL)"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "q.db"
    build(path).close()
    return path


@pytest.fixture
def stdf(db: Path, tmp_path: Path) -> Path:
    return export_run(db, RUN_ID, "stdf", tmp_path / "run.stdf")


@pytest.fixture
def recs(stdf: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    parsed = STDF2Dict(str(stdf))
    # pystdf warns on stderr when a record's REC_LEN disagrees with its fields.
    assert "Broken header" not in capsys.readouterr().err
    return parsed


def _of(recs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["RecType"] == kind]


def _parts(recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Return each part's records between its PIR and PRR, keyed by PART_ID."""
    parts: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for r in recs:
        if r["RecType"] == "PIR":
            assert current is None, "PIR inside an open part"
            current = []
        elif r["RecType"] == "PRR":
            assert current is not None
            parts[r["PART_ID"]] = current
            current = None
        elif current is not None:
            current.append(r)
    return parts


def test_file_is_little_endian_v4_and_framed_exactly(stdf: Path) -> None:
    data = stdf.read_bytes()
    assert data[:6] == struct.pack("<HBBBB", 2, 0, 10, 2, 4)  # FAR: CPU_TYPE 2, STDF_VER 4
    assert sum(4 + len(body) for _, _, body in records(data)) == len(data)


def test_record_counts_and_order(db: Path, recs: list[dict[str, Any]]) -> None:
    kinds = [r["RecType"] for r in recs]
    assert kinds[:2] == ["FAR", "MIR"] and kinds[-1] == "MRR"
    count = Counter(kinds)
    assert count["PIR"] == count["PRR"] == len(SERIALS)
    ((ptrs,),) = sql(
        db,
        f"SELECT COUNT(*) FROM measurements m JOIN steps s ON s.id = m.step_id WHERE {PTR_WHERE}",
        (RUN_ID,),
    )
    assert count["PTR"] == ptrs
    ((tests,),) = sql(
        db,
        "SELECT COUNT(*) FROM (SELECT DISTINCT s.stage, s.name, m.name FROM measurements m "
        f"JOIN steps s ON s.id = m.step_id WHERE {PTR_WHERE})",
        (RUN_ID,),
    )
    assert count["TSR"] == tests
    assert count["PCR"] == 1
    assert count["HBR"] == 4 and count["SBR"] == 4  # pass, fail, error, skipped


def test_parts_have_ids_bins_flags_and_test_counts(db: Path, recs: list[dict[str, Any]]) -> None:
    prrs = {r["PART_ID"]: r for r in _of(recs, "PRR")}
    assert list(prrs) == PART_IDS  # slot order; the serial escaped to ASCII
    assert [(prrs[p]["HARD_BIN"], prrs[p]["SOFT_BIN"]) for p in PART_IDS] == [(1, 11), (2, 2), (3, 3), (5, 5)]
    assert prrs[PASS_SN]["PART_FLG"] == 0
    assert prrs[WEIRD_ASCII]["PART_FLG"] == 0x08  # failed, pass/fail valid
    assert prrs[ERROR_SN]["PART_FLG"] == 0x14  # abnormal end, no pass/fail indication
    assert prrs[DIMM_SN]["PART_FLG"] == 0x10
    assert prrs[PASS_SN]["PART_TXT"] == "ssd QSIM\\u2122 E3 firmware QS010101 slot 1"
    parts = _parts(recs)
    for serial, part_id in zip(SERIALS, PART_IDS, strict=True):
        ((n,),) = sql(
            db,
            f"SELECT COUNT(*) FROM measurements m JOIN steps s ON s.id = m.step_id WHERE {PTR_WHERE} "
            "AND s.dut_serial = ?",
            (RUN_ID, serial),
        )
        assert prrs[part_id]["NUM_TEST"] == n == len(_of(parts[part_id], "PTR"))
        site = prrs[part_id]["SITE_NUM"]
        assert {r["SITE_NUM"] for r in _of(parts[part_id], "PTR")} <= {site}
    assert prrs[PASS_SN]["TEST_T"] > 0


def test_test_numbers_are_stable_per_stage_step_measurement(recs: list[dict[str, Any]]) -> None:
    numbers: dict[str, set[int]] = defaultdict(set)
    for p in _of(recs, "PTR"):
        numbers[p["TEST_TXT"]].add(p["TEST_NUM"])
    assert all(len(n) == 1 for n in numbers.values()), numbers
    assert len({min(n) for n in numbers.values()}) == len(numbers)
    assert "bake/smart/temp_c" in numbers
    tsr = {t["TEST_NUM"]: t for t in _of(recs, "TSR")}
    assert {t["TEST_NAM"] for t in tsr.values()} == set(numbers)


def _ptr(recs: list[dict[str, Any]], part: str, text: str) -> list[dict[str, Any]]:
    return [p for p in _of(_parts(recs)[part], "PTR") if p["TEST_TXT"] == text]


def test_values_limits_and_flags(recs: list[dict[str, Any]]) -> None:
    (ambient,) = _ptr(recs, PASS_SN, "ambient/smart/temp_c")
    assert ambient["RESULT"] == 41.0 and ambient["TEST_FLG"] == 0
    assert (ambient["LO_LIMIT"], ambient["HI_LIMIT"], ambient["UNITS"]) == (0.0, 70.0, "degC")
    assert ambient["OPT_FLAG"] == 0x0E  # reserved bit 1, no spec limits (bits 2, 3), both test limits
    assert ambient["PARM_FLG"] == 0xC0  # a result equal to a limit passes
    marginal = _ptr(recs, PASS_SN, "bake/smart/temp_c")[1]
    assert marginal["RESULT"] == pytest.approx(68.5) and marginal["TEST_FLG"] == 0
    fail, missing = _ptr(recs, WEIRD_ASCII, "bake/smart/temp_c")
    assert fail["RESULT"] == pytest.approx(71.2) and fail["TEST_FLG"] == 0x80
    assert fail["PARM_FLG"] == 0xC0 | 0x08  # above the high limit
    assert missing["TEST_FLG"] == 0x80 | 0x02  # failed, RESULT not valid
    (spare,) = _ptr(recs, PASS_SN, "ambient/smart/spare_pct")
    assert spare["OPT_FLAG"] == 0x0E | 0x80 and spare["LO_LIMIT"] == 10.0  # no high limit
    (media,) = _ptr(recs, PASS_SN, "ambient/smart/media_errors")
    assert media["OPT_FLAG"] == 0x0E | 0x40 and media["HI_LIMIT"] == 0.0  # no low limit
    media_fail = _ptr(recs, WEIRD_ASCII, "bake/smart/media_errors")[1]
    assert media_fail["RESULT"] == 3.0 and media_fail["TEST_FLG"] == 0x80 and media_fail["PARM_FLG"] == 0xC8
    (huge,) = _ptr(recs, PASS_SN, "ambient/identify/host_read_bytes")
    assert huge["RESULT"] == math.inf and HUGE > 3.5e38  # beyond R*4: infinity of its sign
    assert huge["OPT_FLAG"] == 0x0E | 0x40 | 0x80


def test_text_readings_and_unpassed_steps_are_datalog_text(db: Path, recs: list[dict[str, Any]]) -> None:
    texts = [d["TEXT_DAT"] for d in _of(_parts(recs)[WEIRD_ASCII], "DTR")]
    assert "bake[2]/smart/critical_warning = 'temperature' [fail]" in texts
    assert "ambient[1]/identify/model = 'QSIM\\u2122 E3' [pass]" in texts
    assert "bake[1]/smart fail: temp_c = 71.2 degC > high 70" in texts
    station = [d["TEXT_DAT"] for d in _of(recs[: [r["RecType"] for r in recs].index("PIR")], "DTR")]
    assert "station bake[2]/chamber error: chamber stalled\x07 at 80 degC" in station
    assert "station ambient[1]/environment/chamber_temp_c = 25 degC [pass]" in station
    ((text_readings,),) = sql(
        db,
        "SELECT COUNT(*) FROM measurements m JOIN steps s ON s.id = m.step_id "
        "WHERE s.run_id = ? AND s.dut_serial IS NOT NULL AND m.value IS NULL AND m.text IS NOT NULL",
        (RUN_ID,),
    )
    assert sum(" = '" in d["TEXT_DAT"] for d in _of(recs, "DTR")) == text_readings


def test_summaries(recs: list[dict[str, Any]]) -> None:
    ptrs = _of(recs, "PTR")
    for tsr in _of(recs, "TSR"):
        mine = [p for p in ptrs if p["TEST_NUM"] == tsr["TEST_NUM"]]
        assert tsr["HEAD_NUM"] == 255 and tsr["TEST_TYP"] == "P"
        assert tsr["EXEC_CNT"] == len(mine)
        assert tsr["FAIL_CNT"] == sum(bool(p["TEST_FLG"] & 0x80) for p in mine)
    temp = next(t for t in _of(recs, "TSR") if t["TEST_NAM"] == "bake/smart/temp_c")
    assert (temp["EXEC_CNT"], temp["FAIL_CNT"]) == (4, 2)
    assert temp["TEST_MIN"] == pytest.approx(41.0) and temp["TEST_MAX"] == pytest.approx(71.2)
    hbr = {h["HBIN_NUM"]: (h["HBIN_CNT"], h["HBIN_PF"], h["HBIN_NAM"]) for h in _of(recs, "HBR")}
    assert hbr == {1: (1, "P", "pass"), 2: (1, "F", "fail"), 3: (1, " ", "error"), 5: (1, " ", "skipped")}
    sbr = {s["SBIN_NUM"]: (s["SBIN_CNT"], s["SBIN_NAM"]) for s in _of(recs, "SBR")}
    assert sbr[11] == (1, "pass_marginal") and 1 not in sbr
    (pcr,) = _of(recs, "PCR")
    assert (pcr["HEAD_NUM"], pcr["PART_CNT"], pcr["GOOD_CNT"], pcr["ABRT_CNT"]) == (255, 4, 1, 1)


def test_master_records_carry_the_run(db: Path, recs: list[dict[str, Any]]) -> None:
    (mir,) = _of(recs, "MIR")
    ((started, ended, sha, commit),) = sql(
        db, "SELECT started_at, ended_at, plan_sha256, git_commit FROM runs WHERE id = ?", (RUN_ID,)
    )
    assert mir["SETUP_T"] == epoch_s(started) == 1772352000
    assert mir["LOT_ID"] == "LOT<7>" and mir["PART_TYP"] == mir["JOB_NAM"] == "ssd_qual"
    assert (mir["JOB_REV"], mir["NODE_NAM"], mir["TSTR_TYP"]) == ("2.1", "lab-host-01", "lab-7")
    assert (mir["EXEC_TYP"], mir["EXEC_VER"], mir["MODE_COD"]) == ("qualify", "0.1.0", "Q")
    assert (mir["USER_TXT"], mir["SETUP_ID"], mir["ROM_COD"]) == (RUN_ID, sha, commit)
    assert mir["OPER_NAM"] == "Zo\\xeb"
    (mrr,) = _of(recs, "MRR")
    assert mrr["FINISH_T"] == epoch_s(ended) and mrr["USR_DESC"] == "completed"
    assert mrr["EXC_DESC"] == "2 DUTs not passed"


def test_only_the_requested_run_is_exported(stdf: Path, recs: list[dict[str, Any]]) -> None:
    assert "OTHER-1" not in {r.get("PART_ID") for r in recs}
    assert b"OTHER-1" not in stdf.read_bytes()
