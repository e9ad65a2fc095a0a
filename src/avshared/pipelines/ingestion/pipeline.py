"""Ingestion: a CREMA-D root (real or demo) -> `clip_manifest` (usable clips) + `rejected_clips`."""

from kedro.pipeline import Node, Pipeline

from .nodes import check_root, list_clips, probe_clips, sort_rejects_by_reason, validate_clips


def create_pipeline(**kwargs) -> Pipeline:
    """Scan the root, probe every clip's media headers in parallel, keep the usable clips."""
    return Pipeline(
        [
            # First, so that a wrong root is explained before its CSV datasets fail to load.
            Node(check_root, "params:crema_d_root", "crema_d_root_path", name="check_crema_d_root"),
            Node(
                list_clips,
                ["crema_d_sentence_filenames", "crema_d_root_path"],
                "listed_clips",
                name="list_clips",
            ),
            Node(
                probe_clips,
                ["listed_clips", "params:ingestion.workers"],
                "probed_clips",
                name="probe_clips",
            ),
            Node(
                validate_clips,
                ["probed_clips", "crema_d_video_demographics", "params:ingestion"],
                ["clip_manifest", "rejected_clips"],
                name="validate_clips",
            ),
            Node(
                sort_rejects_by_reason,
                "rejected_clips",
                "rejected_clips_report",
                name="report_rejected_clips",
            ),
        ]
    )
