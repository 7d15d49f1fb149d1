"""Golden cases for the pure nvidia-smi parser (texts in ``tests/data/nvidia-smi/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.backends.gpus import (
    APPS_QUERY,
    GPU_QUERY,
    build_gpus,
    foreign_process_counts,
    parse_compute_apps,
    parse_gpu_query,
    parse_number,
)

DATA = Path(__file__).parent.parent / "data" / "nvidia-smi"
U1 = "GPU-7a1d3c9e-2b4f-8a6d-5c3e-9f1b7d2a4e86"


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_queries_name_the_fields_the_parser_reads() -> None:
    assert GPU_QUERY == (
        "nvidia-smi",
        "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu",
        "--format=csv,noheader,nounits",
    )
    assert APPS_QUERY[1] == "--query-compute-apps=pid,gpu_uuid,used_memory"


@pytest.mark.parametrize("name", ["gpus_nounits.txt", "gpus_units.txt", "gpus_header.txt"])
def test_units_and_header_parse_the_same(name: str) -> None:
    gpus = parse_gpu_query(text(name))
    assert [(g.index, g.name) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3"),
        (1, "NVIDIA H100 80GB HBM3"),
        (2, "NVIDIA RTX A6000"),
    ]
    busy = gpus[1]
    assert busy.uuid == U1
    assert (busy.memory_total_mb, busy.memory_used_mb, busy.memory_free_mb) == (81559.0, 30977.0, 50107.0)
    assert busy.utilization_pct == 97.0
    assert busy.processes == ()


@pytest.mark.parametrize("name", ["real_h100_gpus_nounits.txt", "real_h100_gpus_header_units.txt"])
def test_real_capture_from_an_h100(name: str) -> None:
    """Captured on a real NVIDIA H100 80GB HBM3 (driver loaded, idle), with the probe's exact query."""
    (gpu,) = build_gpus(text(name), text("real_h100_apps_empty.txt"))
    assert (gpu.index, gpu.name) == (0, "NVIDIA H100 80GB HBM3")
    assert gpu.uuid == "GPU-1f8f37e5-1a01-8bcc-da1a-71d3a460dcae"
    assert (gpu.memory_total_mb, gpu.memory_used_mb, gpu.memory_free_mb) == (81559.0, 0.0, 81079.0)
    assert gpu.utilization_pct == 0.0
    assert gpu.processes == ()


def test_na_and_not_supported_become_none() -> None:
    (mig,) = parse_gpu_query(text("gpus_mig_na.txt"))
    assert mig.utilization_pct is None
    assert mig.memory_used_mb == 13.0
    (geforce,) = parse_gpu_query(text("gpus_not_supported.txt"))
    assert geforce.memory_total_mb == 24576.0
    assert (geforce.memory_used_mb, geforce.memory_free_mb, geforce.utilization_pct) == (None, None, None)


@pytest.mark.parametrize("value", ["[N/A]", "[Not Supported]", "N/A", "", "  ", "[Unknown Error]"])
def test_placeholders(value: str) -> None:
    assert parse_number(value) is None


def test_numbers_with_and_without_units() -> None:
    assert parse_number(" 81559 MiB") == 81559.0
    assert parse_number("97 %") == 97.0
    assert parse_number("4") == 4.0
    assert parse_number("garbage") is None


def test_empty_apps_output_means_no_process() -> None:
    assert parse_compute_apps(text("apps_empty.txt")) == []
    gpus = build_gpus(text("gpus_nounits.txt"), text("apps_empty.txt"))
    assert all(g.processes == () for g in gpus)
    assert build_gpus(text("gpus_nounits.txt"), None) == gpus


@pytest.mark.parametrize("name", ["apps_nounits.txt", "apps_units.txt"])
def test_apps_attach_to_their_gpu(name: str) -> None:
    gpus = build_gpus(text("gpus_nounits.txt"), text(name))
    assert gpus[1].processes == ((4123, 8192.0), (2291745, 30968.0))
    assert gpus[0].processes == gpus[2].processes == ()


def test_apps_used_memory_na() -> None:
    gpus = build_gpus(text("gpus_nounits.txt"), text("apps_mig_na.txt"))
    assert gpus[0].processes == ((2291745, None),)


def test_foreign_processes_are_counted_per_gpu() -> None:
    gpus = build_gpus(text("gpus_nounits.txt"), text("apps_nounits.txt") + text("apps_foreign.txt"))
    # a uuid missing from the GPU table is dropped; pid 4123 is on GPUs 0 and 1
    assert [len(g.processes) for g in gpus] == [1, 2, 0]
    assert foreign_process_counts(gpus, own_pids={2291745}) == {0: 1, 1: 1, 2: 0}
    assert foreign_process_counts(gpus, own_pids=()) == {0: 1, 1: 2, 2: 0}


def test_driver_failure_text_parses_to_nothing() -> None:
    assert parse_gpu_query(text("driver_failed.txt")) == []
    assert parse_compute_apps(text("driver_failed.txt")) == []


def test_malformed_lines_are_skipped() -> None:
    query = "0, GPU-a, Tesla T4, 15360, 0, 15101, 0\nnot,a,gpu\nx, GPU-b, T4, 1, 1, 1, 1\n"
    assert [g.uuid for g in parse_gpu_query(query)] == ["GPU-a"]
