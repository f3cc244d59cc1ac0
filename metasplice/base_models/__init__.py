"""SpliceAI / OpenSpliceAI base models in PyTorch and delta scores identical to the official CLI.

Modules (imported on use, so that importing this package stays cheap):

* :mod:`.model` - the SpliceAI-10k network (:class:`~.model.SpliceNet`), the five-model
  :class:`~.model.Ensemble` and ``load_spliceai_ensemble(paths=None)`` (official Keras .h5 via h5py).
* :mod:`.openspliceai` - ``load_openspliceai_ensemble(paths, flanking_size)`` for OpenSpliceAI
  PyTorch checkpoints.
* :mod:`.scoring` - the official CLI's computation (windows, masking, strand, indel alignment,
  DS/DP, ``-M``, skip rules with reasons) and the documented deliberate differences.
* :mod:`.engine` - ``IncrementalBackend``: the fast engine (valid convolutions, one reference per
  gene segment, alt cone only, channels-last); :mod:`.windowed` - ``WindowedBackend``, the plain
  full-window oracle.
* :mod:`.vcf` - ``annotate_vcf`` / ``score_records``: streaming VCF annotation in the official
  format; :mod:`.cli` - ``metasplice spliceai`` (``spliceai/``; ``pangolin/`` the same for Pangolin).
* :mod:`.records` - VCF text read line by line with line numbers, shared by every VCF reader;
  :mod:`.cli_io` - what the scoring command lines share: input checks, atomic outputs, signals and
  exit status.
* :mod:`.table` - ``score_variants``: scores.parquet / deltas.npy / targets.npy for the pipeline.
* :mod:`.base` - ``BaseModelSpec`` / ``EngineSpec``, ``load_base_model``, ``make_backend``.
"""
