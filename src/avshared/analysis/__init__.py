"""What the shared encoder learns: plain, tested measurements on a trained model (issue 20).

No Kedro, no files, no MLflow: functions on models, tensors, arrays and tables, for a thin pipeline
node to call on a trained classifier and the test split's feature arrays.

- ``attention``: per-layer, per-head attention maps of a ``SharedEncoder`` (analysis-only path).
- ``shares``: cross-modal attention shares per layer and head, by clip and by label group.
- ``representations``: each clip's audio-only, video-only and audio-visual embeddings, per layer.
- ``retrieval``: cross-modal and same-emotion retrieval, with chance levels and bootstrap intervals.
- ``cka``: linear CKA between two representations, per layer, with bootstrap intervals.
- ``alignment``: a model's retrieval and CKA table, and the paired verdict of two models.
- ``rollout``: attention rollout from [CLS], mapped onto the spectrogram and the face frames.
- ``selection``: the fixed choice of clips to draw (per emotion one correct, one wrong).
- ``disagreement``: cross-modal similarity against voice/face crowd-vote disagreement.
- ``projection``: the 2-D map of the embeddings (scikit-learn's t-SNE).
- ``figures``: matplotlib Figures of the above (never saved here), titles labelled DEMO DATA.

What a node does with them, for one phase (``audio``/``video``: the test clips' standardised
spectrograms and frames, ``ids`` their clip ids, ``crowd_labels`` the labels pipeline's table)::

    facts = shares.clip_facts(ids)  # acted emotion and level per clip
    table = shares.attention_shares(model, audio, video, ids)
    by_layer = shares.shares_by_group(table, per_head=False)
    by_emotion = shares.shares_by_group(table, facts, by=["emotion", "level"])
    figures.shares_by_layer_figure(by_layer, demo=demo)

    emb = representations.clip_embeddings(model, audio, video)
    alignment.alignment_table(emb, facts["emotion"])
    alignment.alignment_comparison(emb, representations.clip_embeddings(baseline, audio, video),
                                   facts["emotion"])  # shared minus separate, same clips
    disagreement.similarity_disagreement_correlation(
        disagreement.pair_similarity(emb.audio, emb.video), ids,
        disagreement.voice_face_disagreement(crowd_labels))
"""
