"""Benchmark feature extraction on a CREMA-D root: the features nodes against a naive loop.

    python benchmarks/bench_features.py ROOT [--limit N] [--repeats 3] [--workers 2]
        [--modalities audio video both] [--face-detectors blazeface skin]
        [--face-boxes first median] [--workdir DIR] [--json PATH]

Every measurement is a whole process (`python benchmarks/bench_features.py --child SPEC`) that
extracts the log-mel spectrograms (audio), the face frames (video), or both one after the other (as
`kedro run --pipelines=features` does), of the same clips, and writes them as feature stores in a
scratch folder (never the project's data/). Two implementations:

- naive (the baseline): one clip at a time in the one process; reads the whole WAV with soundfile,
  and decodes EVERY frame of every video with a `cv2.VideoCapture.read()` loop, then computes the
  same features with avshared.features.audio / video (LogMelExtractor, sample_frame_indices,
  face_frames_item) and the configured face detector.
- pipeline: the real node functions of avshared.pipelines.features.nodes
  (extract_log_mel_spectrograms, extract_face_frames) with conf/base/parameters_features.yml, saved
  by FeatureStoreDataset as the catalog does: for the face frames a pool of --workers processes
  (0: in-process) that decode only up to the sampled frames; the spectrograms with the configured
  features.extraction.audio_workers (0 by default: in the Kedro process).

The features nodes are called directly rather than through `kedro run --pipelines=features`: that
would also need the ingestion and split outputs in a scratch project and would add Kedro's start-up
and the small downstream nodes (spectrogram statistics, report, example figure), none of which is
extraction. Each process's wall time still includes Python's start-up and the imports (torch,
torchaudio, OpenCV); "extract clips/s" leaves them out. Both implementations write the same stores,
so storage costs them alike, and the stores of the last naive and pipeline runs of each modality
are compared clip by clip.

Untimed preparation: the clip manifest (the ingestion nodes: only usable clips are extracted), the
selection of --limit clips spread evenly over it, a read of every selected file so that all runs
find the media in the page cache, and a short warm-up run. Configurations run round-robin,
--repeats times; the table gives median wall times and memory peaks (benchmarks/measure.py). The
target (issue 23): the full 7,442-clip set extracts in under 90 s on 2 cores with the configured
face detector (BlazeFace); the projection scales the extraction time to that many clips and adds the
start-up once. ``--face-detectors`` runs the pipeline with each named detector in the same run
(default: the configured one and the skin rule), and the table gives the share of clips where each
found a face (``face_found`` in the store's issues) and where a frame showed several faces.
``--face-boxes`` does the same for ``features.video.face_box`` (default: the configured one): e.g.
``first median`` measures one detection per clip against the median of three in the same run. The
naive loop uses the configured detector and face box, and its stores are compared with the
pipeline's of the same configuration.
--smoke: 6 clips, both modalities, the configured detector, one run and no warm-up, in seconds: the
suite's check that the benchmark still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from measure import (
    PROJECT_ROOT,
    Measurement,
    at_end,
    describe_machine,
    environment,
    markdown_table,
    run_measured,
    summarise,
    value_range,
    write_json,
)

from avshared import crema_d
from avshared.features.store import FeatureStore
from avshared.pipelines.ingestion.nodes import check_root, list_clips, probe_clips, validate_clips

CONF = PROJECT_ROOT / "conf" / "base"
CHILD_FLAG = "--child"
MODALITIES = {"audio": ("audio",), "video": ("video",), "both": ("audio", "video")}
STORE_NAMES = {"audio": "log_mel_spectrograms", "video": "face_frames"}
#: CREMA-D's clip count (crema_d.ABSENT_CLIPS explains the 20 missing from the full grid).
FULL_SET_CLIPS = 7_442
TARGET_S = 90.0
WARM_UP_CLIPS = 4
#: --smoke: this many clips, one run of each configuration: does the benchmark still run.
SMOKE_CLIPS = 6
#: Largest difference, in dB, between the two implementations' spectrograms of a clip: float16
#: storage rounds to 0.03 dB at -60 dB, and FFTs in differently threaded processes round apart.
AUDIO_TOLERANCE_DB = 0.07
HEADERS = [
    "implementation",
    "modality",
    "face detector",
    "face box",
    "workers",
    "runs",
    "median wall s",
    "wall s min-max",
    "clips",
    "clips/s",
    "extract clips/s",
    "speed-up vs naive",
    "peak RSS MiB (largest process)",
    "peak total RSS MiB (all processes)",
    "face found",
    "several faces",
]
#: (implementation, modality, workers, face detector, face box) of one measured configuration.
Config = tuple[str, str, int, str, str]


# ---------------------------------------------------------------- the measured child process


def naive_log_mels(jobs: list[tuple[str, str]], params: dict[str, Any]) -> Iterator[Any]:
    """One clip at a time: the whole WAV, then the same log-mel computation as the pipeline."""
    import soundfile as sf

    from avshared.features.audio import LogMelConfig, LogMelExtractor
    from avshared.features.store import FeatureIssue, FeatureItem

    extractor = LogMelExtractor(LogMelConfig(**params))
    for clip_id, path in jobs:
        try:
            samples, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError):
            yield FeatureItem(clip_id, None, (FeatureIssue("undecodable", "rejected"),))
            continue
        if len(samples) == 0:
            yield FeatureItem(clip_id, None, (FeatureIssue("empty_audio", "rejected"),))
            continue
        yield FeatureItem(clip_id, extractor(np.ascontiguousarray(samples.T), sample_rate))


def naive_face_frames(jobs: list[tuple[str, str]], params: dict[str, Any]) -> Iterator[Any]:
    """One clip at a time: decode every frame, then sample, find the face and crop as the
    pipeline does (avshared.features.video.face_frames_item)."""
    import cv2

    from avshared.features import video
    from avshared.features.store import FeatureIssue, FeatureItem

    config = video.FaceFramesConfig(**params)
    for clip_id, path in jobs:
        capture = cv2.VideoCapture(path)
        decoded = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded.append(frame)
        capture.release()
        if not decoded:
            yield FeatureItem(clip_id, None, (FeatureIssue("undecodable", "rejected"),))
            continue
        indices = video.sample_frame_indices(len(decoded), config.num_frames)
        frames = [cv2.cvtColor(decoded[i], cv2.COLOR_BGR2RGB) for i in indices]
        yield video.face_frames_item(clip_id, frames, len(decoded), [], config)


def run_child(spec: dict[str, Any]) -> None:
    """Extract the spec's modalities of the manifest's clips into stores; write what it did."""
    from avshared.datasets.feature_store import FeatureStoreDataset
    from avshared.pipelines.features.nodes import extract_face_frames, extract_log_mel_spectrograms

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = yaml.safe_load((CONF / "parameters_features.yml").read_text())["features"]
    params["video"] = {
        **params["video"],
        "face_detector": spec["face_detector"],
        "face_box": spec["face_box"],
    }
    manifest = pd.read_parquet(spec["manifest"])
    output = Path(spec["output"])
    nodes = {"audio": extract_log_mel_spectrograms, "video": extract_face_frames}
    naive = {"audio": naive_log_mels, "video": naive_face_frames}
    path_columns = {"audio": "audio_path", "video": "video_path"}
    extraction = {**params["extraction"], "workers": spec["workers"]}
    stores = {}
    started = time.perf_counter()
    for modality in spec["modalities"]:
        dataset = FeatureStoreDataset(filepath=str(output / STORE_NAMES[modality]))
        if spec["implementation"] == "pipeline":
            dataset.save(nodes[modality](manifest, params[modality], extraction))
        else:
            jobs = list(zip(manifest["clip_id"], manifest[path_columns[modality]], strict=True))
            dataset.save(naive[modality](jobs, params[modality]))
        store = dataset.load()
        stores[modality] = {"stored": len(store), "rejected": len(manifest) - len(store)}
        if modality == "video":
            found = store.issues["issue"] == "face_found"
            stores[modality]["face_found"] = int(found.sum())
            several = store.issues["issue"] == "several_faces"
            stores[modality]["several_faces"] = int(several.sum())
    extract_s = time.perf_counter() - started
    Path(spec["result"]).write_text(json.dumps({"extract_s": extract_s, "stores": stores}))


# ---------------------------------------------------------------- the benchmark


def clip_manifest(root: Path) -> pd.DataFrame:
    """The ingestion pipeline's manifest of usable clips, computed by its nodes."""
    params = yaml.safe_load((CONF / "parameters_ingestion.yml").read_text())["ingestion"]
    logging.getLogger("avshared").setLevel(logging.WARNING)
    sentence_filenames = pd.read_csv(root / crema_d.SENTENCE_FILENAMES_FILE)
    demographics = pd.read_csv(root / crema_d.DEMOGRAPHICS_FILE)
    probed = probe_clips(list_clips(sentence_filenames, check_root(str(root))), params["workers"])
    manifest, _ = validate_clips(probed, demographics, params)
    return manifest


def spread_selection(manifest: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """``limit`` clips spread evenly over the manifest (every actor and sentence alike)."""
    if limit is None or limit >= len(manifest):
        return manifest
    rows = np.unique(np.linspace(0, len(manifest) - 1, limit).round().astype(int))
    return manifest.iloc[rows].reset_index(drop=True)


def read_into_page_cache(manifest: pd.DataFrame) -> None:
    for path in (*manifest["audio_path"], *manifest["video_path"]):
        with open(path, "rb") as media_file:
            while media_file.read(1 << 20):
                pass


def extract(
    config: Config, manifest_path: Path, folder: Path, log_path: Path
) -> tuple[Measurement, dict[str, Any]]:
    """One whole extraction process: its measurement and what it reported."""
    implementation, modality, workers, detector, face_box = config
    output = store_folder(folder, config)
    shutil.rmtree(output, ignore_errors=True)
    spec = {
        "implementation": implementation,
        "modalities": MODALITIES[modality],
        "workers": workers,
        "face_detector": detector,
        "face_box": face_box,
        "manifest": str(manifest_path),
        "output": str(output),
        "result": str(folder / "result.json"),
    }
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, json.dumps(spec)]
    measurement = run_measured(command, cwd=folder, log_path=log_path)
    return measurement, json.loads((folder / "result.json").read_text())


def store_folder(folder: Path, config: Config) -> Path:
    return folder / "stores" / "-".join(map(str, config))


def compare_stores(naive: Path, pipeline: Path, modality: str) -> str:
    """How the naive and pipeline stores of a modality agree, in words."""
    naive_store = FeatureStore(naive / STORE_NAMES[modality])
    pipeline_store = FeatureStore(pipeline / STORE_NAMES[modality])
    naive_ids, pipeline_ids = set(naive_store.clip_ids), set(pipeline_store.clip_ids)
    both = sorted(naive_ids & pipeline_ids)
    differing = []
    for clip_id in both:
        a, b = naive_store.get(clip_id), pipeline_store.get(clip_id)
        if modality == "audio":
            same = np.allclose(a.astype(np.float32), b.astype(np.float32), atol=AUDIO_TOLERANCE_DB)
        else:
            same = np.array_equal(a, b)
        if not same:
            differing.append(clip_id)
    words = f"{modality} of {naive.name}: {len(both) - len(differing)} of {len(both)} clips equal"
    if naive_ids != pipeline_ids:
        words += (
            f"; stored only by naive: {sorted(naive_ids - pipeline_ids)[:5]}, "
            f"only by the pipeline: {sorted(pipeline_ids - naive_ids)[:5]}"
        )
    if differing:
        words += f"; differing, e.g. {differing[:5]}"
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a CREMA-D root (real or generated demo corpus)")
    parser.add_argument("--limit", type=int, help="extract this many clips (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="pipeline pool sizes (default: the configured features.extraction.workers)",
    )
    parser.add_argument(
        "--modalities",
        nargs="+",
        choices=list(MODALITIES),
        default=list(MODALITIES),
        help="what to extract (default: audio video both)",
    )
    parser.add_argument(
        "--face-detectors",
        nargs="+",
        choices=["blazeface", "skin", "centre"],
        help="face detectors of the pipeline runs (default: the configured one, then skin)",
    )
    parser.add_argument(
        "--face-boxes",
        nargs="+",
        choices=["first", "median"],
        help="face boxes (features.video.face_box) of the pipeline runs (default: the configured)",
    )
    parser.add_argument("--workdir", type=Path, help="where scratch folders go (default: /tmp)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_CLIPS} clips, both modalities, the configured detector, one run, no warm-up",
    )
    args = parser.parse_args()
    root = args.root.resolve()
    if args.smoke:
        args.limit, args.repeats, args.modalities = SMOKE_CLIPS, 1, ["both"]
    params = yaml.safe_load((CONF / "parameters_features.yml").read_text())["features"]
    workers = args.workers or [int(params["extraction"]["workers"])]
    configured = params["video"]["face_detector"]
    configured_box = params["video"]["face_box"]
    detectors = args.face_detectors or list(dict.fromkeys([configured, "skin"]))
    if args.smoke:
        detectors = args.face_detectors or [configured]
    face_boxes = args.face_boxes or [configured_box]
    naive = {
        modality: ("naive", modality, 0, configured, configured_box) for modality in args.modalities
    }
    configs: list[Config] = list(naive.values())
    for count in workers:
        for detector in detectors:
            for face_box in face_boxes:
                configs += [
                    ("pipeline", modality, count, detector, face_box)
                    for modality in args.modalities
                    # Audio does not depend on how faces are found: measured once.
                    if modality != "audio" or (detector, face_box) == (detectors[0], face_boxes[0])
                ]
    facts = environment()
    data = "demo" if crema_d.is_demo_root(root) else "crema-d"

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_features_", dir=args.workdir) as scratch:
        folder = Path(scratch)
        manifest = clip_manifest(root)
        selected = spread_selection(manifest, args.limit)
        manifest_path = folder / "clip_manifest.parquet"
        selected.to_parquet(manifest_path)
        read_into_page_cache(selected)
        print(f"{len(selected)} of the manifest's {len(manifest)} usable clips")
        if not args.smoke:
            warm_up_path = folder / "warm_up_manifest.parquet"
            selected.head(WARM_UP_CLIPS).to_parquet(warm_up_path)
            extract(configs[-1], warm_up_path, folder, folder / "warm.log")

        runs: dict[Config, list[Measurement]] = {config: [] for config in configs}
        reports: dict[Config, list[dict[str, Any]]] = {config: [] for config in configs}
        for repeat in range(args.repeats):
            for config in configs:  # round-robin, so drifting load hits every configuration alike
                log_path = folder / f"{'-'.join(map(str, config))}-{repeat}.log"
                measurement, report = extract(config, manifest_path, folder, log_path)
                runs[config].append(measurement)
                reports[config].append(report)
                print(f"  {config}: {measurement.wall_s:.1f} s", flush=True)
        # The naive loop's stores against the pipeline's that found faces the same way (audio's
        # were measured once, with the first face finding).
        finding = {"audio": (detectors[0], face_boxes[0])}
        same = {
            m: ("pipeline", m, workers[0], *finding.get(m, (configured, configured_box)))
            for m in args.modalities
        }
        agreement = [
            compare_stores(
                store_folder(folder, naive[modality]), store_folder(folder, same[modality]), single
            )
            for modality in args.modalities
            if same[modality] in runs
            for single in MODALITIES[modality]
        ] or ["not compared: no pipeline run used the configured face detector and face box"]

    facts = at_end(facts)
    clips = len(selected)
    naive_wall = {m: summarise(runs[naive[m]])["wall_s"] for m in args.modalities}
    rows, results = [], []
    for config in configs:
        implementation, modality, count, detector, face_box = config
        video_store = reports[config][-1]["stores"].get("video")
        found = "-" if video_store is None else f"{video_store['face_found'] / clips:.1%}"
        several = "-" if video_store is None else f"{video_store['several_faces'] / clips:.1%}"
        summary = summarise(runs[config])
        extract_s = float(np.median([report["extract_s"] for report in reports[config]]))
        start_up_s = summary["wall_s"] - extract_s
        projected_s = start_up_s + extract_s * FULL_SET_CLIPS / clips
        label = "naive (baseline)" if implementation == "naive" else implementation
        rows.append(
            [label, modality, detector if modality != "audio" else "-",
             face_box if modality != "audio" else "-",
             count if implementation == "pipeline" else "-", len(runs[config]),
             summary["wall_s"], value_range(summary["wall_s_min"], summary["wall_s_max"]), clips,
             clips / summary["wall_s"], clips / extract_s,
             naive_wall[modality] / summary["wall_s"], summary["peak_rss_mib"],
             summary["peak_total_rss_mib"], found, several]
        )  # fmt: skip
        results.append(
            {
                "implementation": implementation,
                "modality": modality,
                "face_detector": detector,
                "face_box": face_box,
                "workers": count,
                "clips": clips,
                "clips_per_s": clips / summary["wall_s"],
                "extract_s": extract_s,
                "extract_clips_per_s": clips / extract_s,
                "speed_up_vs_naive": naive_wall[modality] / summary["wall_s"],
                "projected_full_set_s": projected_s,
                **summary,
                "stores": reports[config][-1]["stores"],
                "runs": [vars(run) for run in runs[config]],
            }
        )

    corpus = "the generated DEMO corpus" if data == "demo" else "CREMA-D"
    print(f"\n## Feature extraction, {clips} clips of {corpus} in {root}\n")
    print(describe_machine(facts) + f"; {args.repeats} runs per configuration, warm page cache")
    print()
    print(markdown_table(HEADERS, rows))
    print("\nNaive and pipeline stores (last runs): " + "; ".join(agreement))
    for result in results:
        if result["implementation"] == "pipeline" and result["modality"] == "both":
            projected = result["projected_full_set_s"]
            verdict = "meets" if projected < TARGET_S else "MISSES"
            print(
                f"Projected full set ({FULL_SET_CLIPS:,} clips, both modalities, "
                f"{result['face_detector']}, face box {result['face_box']}, "
                f"{result['workers']} workers): "
                f"{projected:.0f} s, which {verdict} the "
                f"target of {TARGET_S:.0f} s (extrapolated from {clips} clips"
                + (", too few: the pool's start-up is scaled up too)" if clips < 500 else ")")
            )
    write_json(
        args.json,
        {
            "benchmark": "features",
            "data": data,
            "root": str(root),
            "clips": clips,
            "manifest_clips": len(manifest),
            "repeats": args.repeats,
            "environment": facts,
            "store_agreement": agreement,
            "target_full_set_s": TARGET_S,
            "results": results,
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        run_child(json.loads(sys.argv[2]))
    else:
        main()
