"""demo_data: synthetic actors, their clips' WAV and FLV files, and simulated crowd ratings of them.

Run with `kedro run --pipelines=demo_data`; it is not part of the default pipeline. Writes under
`crema_d_root`, which it refuses when the folder holds anything it did not write itself.
"""

from kedro.pipeline import Node, Pipeline

from avshared.crowd_ratings import summary_table, tabulate_votes

from .nodes import (
    describe_actors,
    list_sentence_filenames,
    plan_actors,
    plan_clips,
    render_media,
    simulate_crowd_responses,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Plan actors and clips, render the media, then list, describe and rate what was rendered."""
    return Pipeline(
        [
            Node(plan_actors, "params:demo_data", "demo_actors", name="plan_demo_actors"),
            Node(
                plan_clips,
                ["demo_actors", "params:demo_data"],
                "demo_clip_plan",
                name="plan_demo_clips",
            ),
            # Every file-writing node below depends on this one, which refuses a foreign root first.
            Node(
                render_media,
                ["demo_clip_plan", "demo_actors", "params:crema_d_root", "params:demo_data"],
                "demo_clip_truth",
                name="render_demo_media",
            ),
            Node(
                list_sentence_filenames,
                "demo_clip_truth",
                "demo_sentence_filenames",
                name="list_demo_sentence_filenames",
            ),
            Node(
                describe_actors,
                ["demo_actors", "demo_clip_truth"],
                "demo_video_demographics",
                name="describe_demo_actors",
            ),
            Node(
                simulate_crowd_responses,
                ["demo_clip_truth", "params:demo_data.crowd", "params:demo_data.seed"],
                "demo_finished_responses",
                name="simulate_demo_crowd_responses",
            ),
            Node(
                tabulate_votes,
                "demo_finished_responses",
                "demo_tabulated_votes",
                name="tabulate_demo_votes",
            ),
            Node(
                summary_table,
                "demo_tabulated_votes",
                "demo_summary_table",
                name="summarize_demo_votes",
            ),
        ]
    )
