"""Run fio-style workloads on a simulated SSD analytically (the BlockWorkload capability).

A workload is a computation: its I/O mix gives a cost per I/O from the drive's bandwidths,
IOPS limits and latencies at the queue depth (throttled above WCTEMP, slowed by read retries);
the amount or the time gives the I/O count and the device time it "takes" (`runtime_s`). It
never sleeps and never advances the clock: the engine advances it by the longest DUT's
runtime. Writes are amplified by the WAF the scaled-down FTL measured for the write mix; reads
draw unrecovered errors from the ECC failure probability of the data's RBER. Latency
percentiles come from base latency + an exponential queueing delay + the read-retry ladder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from drivers.errors import InstrumentTimeout
from drivers.workload.params import result_to_readings, spec_from_params
from drivers.workload.spec import DirectionResult, WorkloadResult, WorkloadSpec
from sim_instruments.ssd import ecc
from sim_instruments.ssd.device import BulkIo, SimSsd
from sim_instruments.ssd.ftl import WriteMix

_JITTER = 0.1  # service-time spread as a fraction of the base latency
_TRIM_LATENCY_US = 20.0
_TRIM_IOPS_MAX = 1.0e6
_READS = ("read", "randread")
_WRITES = ("write", "randwrite")
_MIXED = ("rw", "randrw")
_TRIMS = ("trim", "randtrim")
_SEQUENTIAL = ("read", "write", "rw", "trim")


@dataclasses.dataclass(frozen=True)
class _Direction:
    """What one direction costs per I/O and how its latency is distributed."""

    cost_s: float  # device time per I/O at this queue depth (latency- or bandwidth-bound)
    base_us: float  # mean unloaded latency
    retry: tuple[tuple[float, float], ...]  # (probability, extra µs) of how a read I/O ends


def _latency_quantile_us(direction: _Direction, queue_us: float, p: float) -> float:
    """Return the p-quantile of base + Exp(queue + jitter) + retry extra."""
    theta = queue_us + _JITTER * direction.base_us

    def cdf(x: float) -> float:
        total = 0.0
        for prob, extra in direction.retry:
            shifted = x - direction.base_us - extra
            if shifted > 0:
                total += prob * -math.expm1(-shifted / theta)
        return total

    lo = direction.base_us
    hi = direction.base_us + max(extra for _, extra in direction.retry) + theta * 60.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return hi


class SimBlockWorkload:
    """The BlockWorkload capability on a simulated SSD (`run_workload(job) -> dict`)."""

    def __init__(self, device: SimSsd, address: str | None = None) -> None:
        self.device = device
        self.address = address or f"sim-fio:{device.serial}"

    def run_workload(self, job: Mapping[str, object]) -> dict[str, float]:
        """Run a plan's job mapping, read exactly as the fio driver reads it, as flat readings."""
        return result_to_readings(self.run(spec_from_params(job)))

    def run(self, spec: WorkloadSpec) -> WorkloadResult:
        """Run one job against the drive model and return what fio would have reported."""
        dev = self.device
        with dev.lock:
            dev.sync()
            if not dev.state.powered or dev.state.dropped:
                raise InstrumentTimeout(self.address, "the block device is gone: the drive does not answer")
            if dev.fatal():
                return WorkloadResult(spec.name, errors=1, error_text="EIO (5): controller fatal status")
            return self._run(spec)

    def _run(self, spec: WorkloadSpec) -> WorkloadResult:
        dev = self.device
        model = dev.model
        capacity = model.capacity_bytes
        if spec.offset_bytes >= capacity:
            return WorkloadResult(
                spec.name, errors=1, error_text=f"EINVAL: offset {spec.offset_bytes} beyond the device"
            )
        region = min(spec.size_bytes or capacity - spec.offset_bytes, capacity - spec.offset_bytes)
        reading = spec.verify_only or spec.rw in _READS
        writing = not spec.verify_only and spec.rw in _WRITES
        if spec.rw in _MIXED and not spec.verify_only:
            read_share = spec.rwmixread_pct / 100.0
        elif spec.rw in _TRIMS and not spec.verify_only:
            read_share = 0.0
        else:
            read_share = 1.0 if reading else 0.0 if writing else 1.0
        trimming = spec.rw in _TRIMS and not spec.verify_only
        if (writing or (spec.rw in _MIXED and read_share < 1.0)) and dev.read_only():
            return WorkloadResult(
                spec.name, errors=1, error_text="EIO (5): write refused, the namespace is write protected"
            )
        sequential = spec.rw in _SEQUENTIAL
        qd = spec.iodepth * spec.numjobs
        sizes = [(size, frac) for size, frac in spec.bs_split if frac > 0]
        mean_io_bytes = sum(size * frac for size, frac in sizes)
        temp_c = dev.dut_temp_c() + model.thermal.active_rise_c
        throttle = dev.throttle_factor(temp_c)
        waf = 1.0
        if read_share < 1.0 and not trimming:
            waf = dev.waf_for(WriteMix(sequential, tuple(sizes), spec.zones, region / capacity))
        read_dir = self._read_direction(sizes, qd, throttle)
        write_dir = self._write_direction(sizes, qd, throttle, waf)
        if trimming:
            trim_cost = max(_TRIM_LATENCY_US * 1e-6 / qd, 1.0 / (_TRIM_IOPS_MAX * throttle))
            cost_s = trim_cost
        else:
            cost_s = read_share * read_dir.cost_s + (1.0 - read_share) * write_dir.cost_s
        ios = self._io_count(spec, region, mean_io_bytes, cost_s)
        runtime_s = ios * cost_s
        read_ios = 0 if trimming else round(ios * read_share)
        write_ios = 0 if trimming else ios - read_ios
        trim_ios = ios if trimming else 0
        read_bytes = round(read_ios * mean_io_bytes)
        write_bytes = round(write_ios * mean_io_bytes)
        trim_bytes = round(trim_ios * mean_io_bytes)
        verify_reads = 0
        # do_verify False writes fio's verify headers only, for a later verify_only pass.
        do_verify = getattr(spec, "do_verify", True)
        if spec.verify is not None and do_verify and not spec.verify_only and write_bytes:
            # fio's verify phase reads back what the job wrote, at read speed.
            verify_reads = write_ios
            runtime_s += verify_reads * read_dir.cost_s
        unaligned = sum(frac for size, frac in sizes if size % 4096)
        outcome = dev.apply_bulk(
            BulkIo(
                region_start_bytes=spec.offset_bytes,
                region_bytes=region,
                read_bytes=read_bytes + round(verify_reads * mean_io_bytes),
                write_bytes=write_bytes,
                trim_bytes=trim_bytes,
                read_ios=read_ios + verify_reads,
                write_ios=write_ios,
                unaligned_ios=round((read_ios + write_ios + verify_reads) * unaligned),
                sequential=sequential,
                waf=waf,
                runtime_s=runtime_s,
                busy_temp_c=temp_c,
                verify=spec.verify is not None or spec.verify_only,
            )
        )
        # Little's law: qd I/Os are in flight, so each waits qd / rate in total.
        rate = 1.0 / cost_s if cost_s > 0 else 0.0
        queue_factor = qd / rate * 1e6 if rate else 0.0
        result = WorkloadResult(spec.name, runtime_s=runtime_s)
        if read_ios or verify_reads:
            result.read = self._direction_result(
                read_dir, read_ios + verify_reads, mean_io_bytes, runtime_s, queue_factor
            )
        if write_ios:
            result.write = self._direction_result(
                write_dir, write_ios, mean_io_bytes, runtime_s, queue_factor
            )
        if trim_ios:
            result.trim = DirectionResult(
                iops=trim_ios / runtime_s if runtime_s else 0.0,
                bw_bytes_s=trim_bytes / runtime_s if runtime_s else 0.0,
                io_bytes=trim_bytes,
            )
        if outcome.unrecovered_reads:
            result.errors = outcome.unrecovered_reads
            result.error_text = (
                f"EIO (5): {outcome.unrecovered_reads} unrecovered read error(s), "
                f"first at offset {outcome.first_error_offset_bytes}"
            )
        result.verify_failures = list(outcome.verify_failures)
        return result

    def _io_count(self, spec: WorkloadSpec, region: int, mean_io_bytes: float, cost_s: float) -> int:
        """Return how many I/Os the job issues: by amount, by time, or the smaller of both."""
        by_amount: float | None = None
        if spec.io_bytes is not None:
            by_amount = spec.io_bytes * spec.numjobs / mean_io_bytes
        elif spec.runtime_s is None:
            by_amount = (spec.size_bytes or region) * spec.numjobs / mean_io_bytes
        by_time = spec.runtime_s / cost_s if spec.runtime_s is not None and cost_s > 0 else None
        counts = [count for count in (by_amount, by_time) if count is not None]
        return max(0, math.floor(min(counts)))

    def _read_direction(self, sizes: list[tuple[int, float]], qd: int, throttle: float) -> _Direction:
        dev = self.device
        perf = dev.model.performance
        code = dev.model.ecc
        media = dev.media_state()
        exceed = ecc.ladder_exceedance(code, media.rber)
        cost_s = 0.0
        base_us = 0.0
        mixture: dict[float, float] = {}
        for size, frac in sizes:
            codewords = max(1, math.ceil(size / code.codeword_data_bytes))
            # An I/O ends at the rung its worst codeword needs: P(≥ rung i) = 1 − (1 − p_i)^c.
            reach = [-math.expm1(codewords * math.log1p(-min(p, 1.0 - 1e-16))) for p in exceed]
            extra = 0.0
            outcomes = [(1.0 - reach[0], 0.0)]
            for i, step in enumerate(code.read_retry):
                extra += step.latency_us
                upper = reach[i + 1] if i + 1 < len(code.read_retry) else 0.0
                outcomes.append((max(0.0, reach[i] - upper), extra))
            mean_extra_us = sum(prob * lat for prob, lat in outcomes)
            latency_us = perf.read_latency_us + size / perf.seq_read_bytes_s * 1e6
            bandwidth = min(perf.seq_read_bytes_s, perf.read_iops_max * size) * throttle
            # Retries occupy the dies too, so they cut bandwidth as well as adding latency.
            bandwidth /= 1.0 + mean_extra_us / latency_us
            cost_s += frac * max(size / bandwidth, (latency_us + mean_extra_us) * 1e-6 / qd)
            base_us += frac * latency_us
            for prob, lat in outcomes:
                mixture[lat] = mixture.get(lat, 0.0) + frac * prob
        return _Direction(cost_s, base_us, tuple((prob, lat) for lat, prob in sorted(mixture.items())))

    def _write_direction(
        self, sizes: list[tuple[int, float]], qd: int, throttle: float, waf: float
    ) -> _Direction:
        perf = self.device.model.performance
        cost_s = 0.0
        base_us = 0.0
        for size, frac in sizes:
            latency_us = perf.write_latency_us + size / perf.seq_read_bytes_s * 1e6
            # Steady state: the NAND programs host data and GC relocations alike.
            bandwidth = min(perf.nand_program_bytes_s / waf, perf.write_iops_max * size) * throttle
            cost_s += frac * max(size / bandwidth, latency_us * 1e-6 / qd)
            base_us += frac * latency_us
        return _Direction(cost_s, base_us, ((1.0, 0.0),))

    def _direction_result(
        self, direction: _Direction, ios: int, mean_io_bytes: float, runtime_s: float, queue_factor_us: float
    ) -> DirectionResult:
        queue_us = max(0.0, queue_factor_us - direction.base_us)
        tail = 1.0 - 1.0 / max(ios, 2)
        return DirectionResult(
            iops=ios / runtime_s if runtime_s else 0.0,
            bw_bytes_s=ios * mean_io_bytes / runtime_s if runtime_s else 0.0,
            io_bytes=round(ios * mean_io_bytes),
            lat_p50_us=_latency_quantile_us(direction, queue_us, 0.5),
            lat_p99_us=_latency_quantile_us(direction, queue_us, 0.99),
            lat_p999_us=_latency_quantile_us(direction, queue_us, 0.999),
            lat_max_us=_latency_quantile_us(direction, queue_us, min(tail, 1.0 - 1e-9)),
        )
