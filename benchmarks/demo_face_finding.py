"""How often each face finder finds the drawn face of a generated demo corpus (DEMO DATA).

    python benchmarks/demo_face_finding.py ROOT [--sentence DFA] [--limit N] [--json PATH] [--smoke]

ROOT is a corpus written by `kedro run --pipelines=demo_data` with the project's
conf/base/parameters_demo_data.yml (any actors and sentences). For every readable video it samples
the frames as the features pipeline does and runs each face finder (BlazeFace and the skin rule,
each with either face box: the first searched frame's face, or the median of the detection
frames') with conf/base/parameters_features.yml otherwise; the true face box is the drawn face
ellipse of the clip's actor (demo_data's plan_actors: centre and half-axes; the head's sway and drop
within a clip move it by a few pixels). The table gives, per finder, face box and kind of backdrop
(cool, or warm and skin-coloured), the share of clips where it found a face, the share where that
face overlaps the drawn one with IoU >= 0.5, the median IoU, and the CPU time that finding the face
took per clip (one process, one OpenCV thread; decoding left out; CPU time, so that other jobs on
the machine inflate it far less than wall time). --smoke: the first 6 clips, the suite's check that
the script still runs (tests/benchmarks/test_smoke.py).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml
from measure import PROJECT_ROOT, markdown_table, write_json

from avshared import media
from avshared.crema_d import VIDEO_HEIGHT, VIDEO_WIDTH
from avshared.features import video
from avshared.features.face_detector import box_iou
from avshared.pipelines.demo_data.nodes import plan_actors

CONF = PROJECT_ROOT / "conf" / "base"
FINDERS = ("blazeface", "skin")
MIN_IOU = 0.5
#: The face centre's height in the frame, as demo_data's synthesis draws it.
FACE_CENTRE_Y = 0.47


def true_face_boxes(actors: pd.DataFrame) -> dict[int, np.ndarray]:
    """Each actor's drawn face ellipse as a box (x0, y0, x1, y1), without the head's motion."""
    boxes = {}
    for actor in actors.itertuples():
        cx = VIDEO_WIDTH / 2 + actor.face_dx
        cy = VIDEO_HEIGHT * FACE_CENTRE_Y + actor.face_dy
        half_w, half_h = actor.face_width, actor.face_height
        boxes[actor.ActorID] = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    return boxes


def measure(root: Path, sentence: str = "*", limit: int | None = None) -> pd.DataFrame:
    demo = yaml.safe_load((CONF / "parameters_demo_data.yml").read_text())["demo_data"]
    features = yaml.safe_load((CONF / "parameters_features.yml").read_text())["features"]
    actors = plan_actors({**demo, "actors": "all"})
    truth = true_face_boxes(actors)
    warm = dict(zip(actors["ActorID"], actors["backdrop_warmth"] > 0, strict=True))
    configs = {
        (finder, face_box): video.FaceFramesConfig(
            **{**features["video"], "face_detector": finder, "face_box": face_box}
        )
        for finder in FINDERS
        for face_box in video.FACE_BOXES
    }
    num_frames = features["video"]["num_frames"]
    rows = []
    for path in sorted((root / "VideoFlash").glob(f"*_{sentence}_*.flv"))[:limit]:
        actor = int(re.match(r"(\d+)_", path.name).group(1))
        try:
            frames, _, _ = video.read_sampled_frames(str(path), num_frames)
        except media.MediaError:
            continue
        if not frames:
            continue
        for (finder, face_box), config in configs.items():
            started = time.process_time()
            face = video.clip_face(frames, config)
            cpu_s = time.process_time() - started
            iou = 0.0 if face is None else float(box_iou(truth[actor], np.array([face.box]))[0])
            rows.append(
                {
                    "clip": path.stem,
                    "backdrop": "warm (skin-coloured)" if warm[actor] else "cool",
                    "finder": finder,
                    "face_box": face_box,
                    "found": face is not None,
                    "iou": iou,
                    "cpu_ms": 1000 * cpu_s,
                }
            )
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    everyone = results.assign(backdrop="all")
    grouped = pd.concat([results, everyone]).groupby(["finder", "face_box", "backdrop"])
    return grouped.agg(
        clips=("clip", "size"),
        found=("found", "mean"),
        on_the_face=("iou", lambda iou: (iou >= MIN_IOU).mean()),
        median_iou=("iou", "median"),
        cpu_ms=("cpu_ms", "mean"),
    ).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a generated demo corpus")
    parser.add_argument("--json", type=Path, help="also write the table to this JSON file")
    parser.add_argument("--sentence", default="*", help="only this sentence's clips, e.g. DFA")
    parser.add_argument("--limit", type=int, help="only the first N clips (default: all)")
    parser.add_argument("--smoke", action="store_true", help="the first 6 clips: does it run")
    args = parser.parse_args()
    if args.smoke:
        args.limit = 6
    cv2.setNumThreads(1)  # as in the features pipeline's workers
    summary = summarise(measure(args.root.resolve(), args.sentence, args.limit))
    headers = ["finder", "face box", "backdrop", "clips", "face found", f"IoU >= {MIN_IOU}",
               "median IoU", "CPU ms per clip"]  # fmt: skip
    rows = [
        [r.finder, r.face_box, r.backdrop, r.clips, f"{r.found:.1%}", f"{r.on_the_face:.1%}",
         r.median_iou, r.cpu_ms]
        for r in summary.itertuples()
    ]  # fmt: skip
    print(f"\n## Face finding on the generated DEMO corpus in {args.root}\n")
    print(markdown_table(headers, rows))
    write_json(args.json, {"root": str(args.root), "summary": summary.to_dict("records")})


if __name__ == "__main__":
    main()
