"""The soak's and the load test's overload bars on made-up outcomes (no server): what makes them pass or fail."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from benchmarks import loadtest, soak
from benchmarks.loadtest import Outcome


def outcomes(duration_s: float, latency_s: float, late_latency_s: float | None = None, status: int = 200) -> list:
    """One request a second; from the last sixth on ``late_latency_s``."""
    late = late_latency_s if late_latency_s is not None else latency_s
    return [
        Outcome("good", True, status, late if t >= duration_s * 5 / 6 else latency_s, float(t))
        for t in range(int(duration_s))
    ]


def samples(duration_s: float, rss_start: float, rss_end: float) -> list[dict]:
    """RSS every 10 s, rising linearly from ``rss_start`` to ``rss_end``, one worker."""
    n = int(duration_s // 10)
    return [
        {"t_s": 10.0 * i, "worker_pid": 7, "worker_rss_mb": rss_start + (rss_end - rss_start) * i / (n - 1)}
        for i in range(n)
    ]


def test_soak_bars_pass_on_a_steady_run_scaled_to_its_length() -> None:
    result = soak.evaluate(outcomes(180, 0.5), samples(180, 1000, 1010), 180)
    assert result["passed"], result["bars"]
    assert result["figures"]["settle_s"] == 30 and result["figures"]["window_s"] == 30  # 3 min: minute 0.5


def test_soak_bars_catch_growth_drift_and_5xx() -> None:
    assert not soak.evaluate(outcomes(180, 0.5), samples(180, 1000, 1200), 180)["passed"]  # RSS +~17 %
    slower = soak.evaluate(outcomes(180, 0.5, late_latency_s=0.7), samples(180, 1000, 1000), 180)
    assert not slower["bars"][next(k for k in slower["bars"] if k.startswith("p99"))]
    failed = soak.evaluate(outcomes(180, 0.5, status=500), samples(180, 1000, 1000), 180)
    assert not failed["bars"]["zero 5xx"]


def test_soak_rss_is_judged_on_window_medians_not_instants() -> None:
    """A flat RSS that swings +-25 % with the photos in flight passes; a steady 10 % climb under the same swing
    fails, whichever instants the windows start and end on."""
    swing = [1.25, 0.75, 1.0]  # big batch in flight, just freed, typical
    flat = [s | {"worker_rss_mb": 1000 * swing[i % 3]} for i, s in enumerate(samples(180, 0, 0))]
    assert soak.evaluate(outcomes(180, 0.5), flat, 180)["passed"]
    climbing = [s | {"worker_rss_mb": (1000 + 0.6 * s["t_s"]) * swing[i % 3]} for i, s in enumerate(flat)]
    result = soak.evaluate(outcomes(180, 0.5), climbing, 180)
    assert not result["passed"] and result["figures"]["rss_growth_pct"] > 5


def test_soak_report_and_chart(tmp_path: Path) -> None:
    result = soak.evaluate(outcomes(180, 0.5), samples(180, 1000, 1010), 180)
    result |= {"config": {"minutes": 3.0, "clients": 16, "weights": "w.pth"}, "machine": "a CPU, 2 cores",
               "url": "http://127.0.0.1:1", "samples": samples(180, 1000, 1010),
               "windows": soak.windows(outcomes(180, 0.5), 10, 180)}  # fmt: skip
    path = soak.write_report(result, tmp_path)
    text = path.read_text()
    assert "3 min (a short run" in text and "a CPU, 2 cores" in text and "| yes |" in text
    assert Image.open(tmp_path / "soak.png").size == (900, 560)


def test_overload_bars() -> None:
    measured = loadtest.summarise(outcomes(30, 0.5), 30)
    ok = [Outcome("good", True, 503 if t % 3 else 200, 0.01 if t % 3 else 0.5, float(t)) for t in range(60)]
    phases = {"clients": 128, "overload": loadtest.summarise(ok, 30), "recovery": measured}
    assert all(loadtest.overload_bars(phases, measured).values())
    timeouts = [Outcome("good", True, 504, 60.0, float(t), problem="HTTP 504") for t in range(10)]
    phases["overload"] = loadtest.summarise(ok + timeouts, 30)
    bars = loadtest.overload_bars(phases, measured)
    assert not bars["overload: every answer a correct 200, its 4xx or 503 (no other 5xx)"]
    phases |= {"overload": loadtest.summarise(ok, 30), "recovery": loadtest.summarise(outcomes(30, 0.5)[:10], 30)}
    assert not bars_recovered(loadtest.overload_bars(phases, measured))


def bars_recovered(bars: dict[str, bool]) -> bool:
    return next(v for k, v in bars.items() if k.startswith("after overload"))
