"""Check the DDR5 SPD decoder field by field against a commercial reader's reports.

Each golden image in fixtures/golden/spd/ comes with the reader's HTML report; every expected
value here is parsed out of that report, never typed in.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drivers.dimm.spd import (
    DDR5_DRAM_TYPE,
    Ddr5Spd,
    ModuleType,
    cas_latency_at,
    crc16_spd,
    decode_spd,
    time_to_clocks,
)

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "spd"
GOLDEN_NAMES = sorted(path.stem for path in GOLDEN_DIR.glob("*.bin"))

# How the reader names module types in "Architecture" and in the JEDEC label's type letter.
READER_ARCHITECTURE = {ModuleType.UDIMM: "UDIMM", ModuleType.SODIMM: "SO-DIMM"}
LABEL_TYPE_LETTER = {ModuleType.UDIMM: "U", ModuleType.SODIMM: "S", ModuleType.RDIMM: "R"}


@dataclass
class ReaderReport:
    """Hold the reader's report: named sections of label/value pairs, and its timing tables."""

    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def value(self, section: str, label: str) -> str:
        """Return one value of a section, failing the test with the labels it does have."""
        labels = self.sections[section]
        assert label in labels, f"{label!r} not in report section {section}: {sorted(labels)}"
        return labels[label]


class _ReportParser(HTMLParser):
    """Collect the reader's label/value cells (tables id=t1) and timing rows (id=t2)."""

    def __init__(self) -> None:
        super().__init__()
        self.report = ReaderReport()
        self._table_id: str | None = None
        self._title = ""
        self._header: list[str] = []
        self._row: list[str] | None = None
        self._cell_class: str | None = None
        self._in_header = False
        self._text: list[str] = []
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table_id = attributes.get("id")
            self._title = ""
            self._header = []
            self._row = None
        elif tag == "th":
            self._in_header = True
            self._text = []
        elif tag == "tr" and self._table_id == "t2":
            self._finish_row()
            self._row = []
        elif tag == "td":
            self._cell_class = attributes.get("class") or ""
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text).strip()
        if tag == "th":
            self._in_header = False
            if self._table_id == "t1":
                self._title = text
                self.report.sections[text] = {}
            else:
                self._header.append(text)
                if len(self._header) == 1:
                    self._title = text
                    self.report.tables[text] = []
        elif tag == "td" and self._table_id == "t1":
            if self._cell_class == "parnm":
                self._label = text
            elif self._cell_class == "val" and self._label:
                self.report.sections[self._title][self._label] = text
                self._label = None
        elif tag == "td" and self._row is not None:
            self._row.append(text)
        elif tag == "table":
            self._finish_row()
            self._table_id = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def _finish_row(self) -> None:
        # The reader leaves its table rows unclosed, so a row ends at the next <tr> or </table>.
        if self._table_id == "t2" and self._row:
            self.report.tables[self._title].append(dict(zip(self._header, self._row, strict=True)))
        self._row = None


def parse_report(path: Path) -> ReaderReport:
    """Parse one reader report."""
    parser = _ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser.report


@pytest.fixture(params=GOLDEN_NAMES)
def golden(request: pytest.FixtureRequest) -> tuple[bytes, Ddr5Spd, ReaderReport]:
    """Give one golden image, its decode and its reader report."""
    name = request.param
    image = (GOLDEN_DIR / f"{name}.bin").read_bytes()
    return image, decode_spd(image), parse_report(GOLDEN_DIR / f"{name}.reader.html")


def _match(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} does not match the report's {text!r}"
    return found


def _tck_ps(mhz: int) -> int:
    # SPD and JEDEC truncate the clock period to whole picoseconds (2400 MHz -> 416 ps).
    return 10**6 // mhz


def _frequency_rows(report: ReaderReport) -> list[tuple[int, dict[str, str]]]:
    rows = report.tables["FREQUENCY"]
    assert len(rows) >= 5, f"expected the reader's JEDEC timing table, got {rows}"
    return [(int(_match(r"^(\d+) MHz$", row["FREQUENCY"]).group(1)), row) for row in rows]


def test_golden_set_is_complete() -> None:
    assert len(GOLDEN_NAMES) == 3, GOLDEN_NAMES
    for name in GOLDEN_NAMES:
        assert (GOLDEN_DIR / f"{name}.reader.html").is_file(), name


def test_report_parser_finds_every_section(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, _, report = golden
    assert set(report.sections) == {"MEMORY MODULE", "DRAM COMPONENTS", "SPD HUB DEVICE"}
    assert len(report.sections["MEMORY MODULE"]) >= 12
    assert "FREQUENCY" in report.tables


def test_crc_checks_on_golden_image(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    image, spd, _ = golden
    stored = int.from_bytes(image[510:512], "little")
    assert crc16_spd(image[:510]) == stored
    assert spd.crc_stored == stored
    assert spd.crc_valid


def test_module_manufacturer(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert str(spd.module_manufacturer) == report.value("MEMORY MODULE", "Manufacturer")


def test_part_number(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert spd.part_number == report.value("MEMORY MODULE", "Part Number")


def test_jedec_serial_is_last_eight_hex_digits(
    golden: tuple[bytes, Ddr5Spd, ReaderReport],
) -> None:
    _, spd, report = golden
    reader_serial = report.value("MEMORY MODULE", "Serial Number").removesuffix("h")
    assert spd.serial_number == reader_serial[-8:]


def test_dram_and_module_type(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert spd.dram_type == DDR5_DRAM_TYPE
    architecture = report.value("MEMORY MODULE", "Architecture")
    assert architecture == f"DDR5 SDRAM {READER_ARCHITECTURE[spd.module_type]}"


def test_speed_grade(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    grade = _match(r"^(DDR5-\d+)[A-Z]?$", report.value("MEMORY MODULE", "Speed Grade"))
    assert spd.speed_grade == grade.group(1)
    clock = _match(r"^(\d+) MHz", report.value("DRAM COMPONENTS", "Input Clock Frequency"))
    assert spd.clock_mhz == int(clock.group(1))


def test_capacity_and_components(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(r"^(\d+) GB \((\d+) components\)$", report.value("MEMORY MODULE", "Capacity"))
    assert spd.capacity_bytes == int(found.group(1)) * 2**30
    assert spd.dram_package_count == int(found.group(2))


def test_organisation_and_ranks(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(
        r"^(Symmetrical|Asymmetrical) (\d+)M x(\d+) \((\d+) ranks?\)$",
        report.value("MEMORY MODULE", "Organization"),
    )
    assert spd.asymmetric == (found.group(1) == "Asymmetrical")
    assert spd.data_width_bits == int(found.group(3))
    assert spd.capacity_bytes * 8 // spd.data_width_bits == int(found.group(2)) * 2**20
    assert spd.ranks == int(found.group(4))


def test_jedec_label(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(
        r"^(\d+)GB (\d+Rx\d+) PC5-(\d+)[A-Z]?-([A-Z])([A-Z]\d)-\w+-([A-Z0-9]+)$",
        report.value("MEMORY MODULE", "JEDEC DIMM Label"),
    )
    capacity_gb, organisation, data_rate, type_letter, raw_card, temperature = found.groups()
    assert spd.capacity_bytes == int(capacity_gb) * 2**30
    assert spd.organisation == organisation
    assert spd.data_rate_mts == int(data_rate)
    assert LABEL_TYPE_LETTER[spd.module_type] == type_letter
    assert spd.reference_raw_card == raw_card
    assert spd.operating_temperature_range == temperature


def test_raw_card(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(r"/ ([A-Z]\d) ", report.value("MEMORY MODULE", "Revision / Raw Card"))
    assert spd.reference_raw_card == found.group(1)


def test_manufacturing_date(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(r"Week (\d+), (\d{4})$", report.value("MEMORY MODULE", "Manufacturing Date"))
    assert spd.manufacture_week == int(found.group(1))
    assert spd.manufacture_year == int(found.group(2))


def test_voltages(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(
        r"^VDD ([\d.]+) V / VDDQ ([\d.]+) V / VPP ([\d.]+) V$",
        report.value("DRAM COMPONENTS", "Supply Voltage"),
    )
    vdd_v, vddq_v, vpp_v = (float(value) for value in found.groups())
    assert spd.vdd_v == pytest.approx(vdd_v)
    assert spd.vddq_v == pytest.approx(vddq_v)
    assert spd.vpp_v == pytest.approx(vpp_v)


def test_spd_revision(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(r"^(\d+\.\d+) /", report.value("DRAM COMPONENTS", "SPD Revision"))
    assert spd.spd_revision == found.group(1)


def test_dram_manufacturer(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert str(spd.dram_manufacturer) == report.value("DRAM COMPONENTS", "Manufacturer")


def test_dram_package_and_die(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert spd.sdram.package_type in report.value("DRAM COMPONENTS", "Package")
    found = _match(r"^(\d+) Gb .* / (\d+) dies?$", report.value("DRAM COMPONENTS", "Die Density / Count"))
    assert spd.sdram.density_per_die_gbit == int(found.group(1))
    assert spd.sdram.die_per_package == int(found.group(2))


def test_dram_composition(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(
        r"^(\d+)Mb x(\d+) \((\d+)Mb x(\d+) x (\d+) banks\)$",
        report.value("DRAM COMPONENTS", "Composition"),
    )
    die_depth_mbit, width, bank_depth_mbit, bank_width, banks = map(int, found.groups())
    sdram = spd.sdram
    assert sdram.io_width_bits == width == bank_width
    assert sdram.density_per_die_gbit * 1024 // sdram.io_width_bits == die_depth_mbit
    assert sdram.banks == banks
    assert die_depth_mbit // sdram.banks == bank_depth_mbit
    # Each bank is rows x columns deep.
    assert 2 ** (sdram.row_address_bits + sdram.column_address_bits) == bank_depth_mbit * 2**20


def test_pmic_manufacturer(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    assert spd.pmic0 is not None
    name = spd.pmic0.manufacturer.name
    assert name is not None
    assert report.value("MEMORY MODULE", "PMIC Model").startswith(name)


def test_no_thermal_sensor(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    status = report.value("SPD HUB DEVICE", "Temperature Sensor / Status")
    assert status.startswith("Not Incorporated")
    assert spd.temp_sensor is None


def test_cas_latencies_supported(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    listed = report.value("DRAM COMPONENTS", "Read Latencies Supported")
    reader_cls = [int(value) for value in re.findall(r"(\d+)T", listed)]
    assert len(reader_cls) >= 5, listed
    # The reader lists the highest latencies first and cuts the list short with "...".
    assert list(reversed(spd.cas_latencies))[: len(reader_cls)] == reader_cls


def test_minimum_timing_delays_at_tck_min(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    found = _match(
        r"^(\w+) / (\d+)-(\d+)-(\d+)-(\d+)-(\d+)$",
        report.value("DRAM COMPONENTS", "Minimum Timing Delays"),
    )
    assert spd.standard_timings == (found.group(1) == "Standard")
    tck_ps = spd.tck_avg_min_ps
    decoded = [
        cas_latency_at(spd, tck_ps),
        time_to_clocks(spd.trcd_min_ps, tck_ps),
        time_to_clocks(spd.trp_min_ps, tck_ps),
        time_to_clocks(spd.tras_min_ps, tck_ps),
        time_to_clocks(spd.trc_min_ps, tck_ps),
    ]
    assert decoded == [int(value) for value in found.groups()[1:]]


def test_cas_latency_at_each_listed_frequency(
    golden: tuple[bytes, Ddr5Spd, ReaderReport],
) -> None:
    _, spd, report = golden
    reader_cls: dict[int, list[int]] = defaultdict(list)
    for mhz, row in _frequency_rows(report):
        reader_cls[mhz].append(int(row["CAS"]))
    # The reader shows one row per supported CL at the fastest standard clock it allows; the
    # CL our rule picks at a clock is the smallest of that clock's rows.
    for mhz, latencies in reader_cls.items():
        assert cas_latency_at(spd, _tck_ps(mhz)) == min(latencies), f"{mhz} MHz"
        assert set(latencies) <= set(spd.cas_latencies), f"{mhz} MHz"


def test_core_timings_in_clocks_at_each_listed_frequency(
    golden: tuple[bytes, Ddr5Spd, ReaderReport],
) -> None:
    _, spd, report = golden
    for mhz, row in _frequency_rows(report):
        tck_ps = _tck_ps(mhz)
        decoded = {
            "RCD": time_to_clocks(spd.trcd_min_ps, tck_ps),
            "RP": time_to_clocks(spd.trp_min_ps, tck_ps),
            "RAS": time_to_clocks(spd.tras_min_ps, tck_ps),
            "RC": time_to_clocks(spd.trc_min_ps, tck_ps),
            "WR": time_to_clocks(spd.twr_min_ps, tck_ps),
        }
        assert decoded == {key: int(row[key]) for key in decoded}, f"{mhz} MHz"


def _window_ns(clock_ranges: list[tuple[int, int, int]]) -> tuple[float, float]:
    """Intersect the times that round to [lowest, highest] clocks at each tCK, in ns.

    time_to_clocks gives c clocks exactly when 1000(c-1)·tCK <= 997·t < 1000c·tCK.
    """
    low_ns = max((lowest - 1) * tck_ps / 997 for lowest, _, tck_ps in clock_ranges)
    high_ns = min(highest * tck_ps / 997 for _, highest, tck_ps in clock_ranges)
    return low_ns, high_ns


def test_core_timings_in_ns(golden: tuple[bytes, Ddr5Spd, ReaderReport]) -> None:
    _, spd, report = golden
    # The report gives times only as clocks per frequency; together they pin each time to a
    # narrow window in ns, which the decoded time must fall in.
    windows: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    lowest_cl: dict[int, int] = {}
    for mhz, row in _frequency_rows(report):
        for key in ("RCD", "RP", "RAS", "RC"):
            windows[key].append((int(row[key]), int(row[key]), _tck_ps(mhz)))
        lowest_cl[mhz] = min(int(row["CAS"]), lowest_cl.get(mhz, int(row["CAS"])))
    # The lowest CL listed at a clock only bounds tAA's clocks between the next lower
    # supported CL (exclusive) and itself.
    for mhz, cas_latency in lowest_cl.items():
        lower = [cl for cl in spd.cas_latencies if cl < cas_latency]
        windows["AA"].append(((max(lower) + 1) if lower else 1, cas_latency, _tck_ps(mhz)))
    decoded_ns = {
        "AA": spd.taa_min_ps / 1000,
        "RCD": spd.trcd_min_ps / 1000,
        "RP": spd.trp_min_ps / 1000,
        "RAS": spd.tras_min_ps / 1000,
        "RC": spd.trc_min_ps / 1000,
    }
    for key, time_ns in decoded_ns.items():
        low_ns, high_ns = _window_ns(windows[key])
        assert low_ns <= time_ns < high_ns, (key, time_ns, low_ns, high_ns)
        assert high_ns - low_ns < 1.0, (key, low_ns, high_ns)


def test_refresh_times_at_each_listed_frequency(
    golden: tuple[bytes, Ddr5Spd, ReaderReport],
) -> None:
    _, spd, report = golden
    # The reader rounds tRFC up at the exact clock period, without JEDEC's 0.3 % guard band
    # (that band is a whole clock or more at these lengths), so check its own convention.
    for mhz, row in _frequency_rows(report):
        assert math.ceil(spd.trfc1_min_ps * mhz / 10**6) == int(row["RFC1"]), f"{mhz} MHz"
        assert math.ceil(spd.trfc2_min_ps * mhz / 10**6) == int(row["RFC2"]), f"{mhz} MHz"
