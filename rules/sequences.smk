# Reference and alternative sequence windows per variant, one file per window length:
# results/sequences/ctx{L}.npz with keys ref, alt (uint8 [N, L], A,C,G,T,N = 0..4, rows in
# variants.parquet order, first REF base at index L//2), context, strand_oriented, variant_id.
# Convention (indels, strands, contig ends): metasplice.sequences.extract_windows.
# Lengths to build by default: SequencesConfig.from_dict(CONFIG.get("sequences")).targets().

from metasplice.sequences import SequencesConfig


rule extract_sequences:
    input:
        variants=VARIANTS,
        genome=GENOME,
        fai=f"{GENOME}.fai",
    output:
        "results/sequences/ctx{ctx}.npz",
    log:
        "logs/sequences/ctx{ctx}.log",
    benchmark:
        "results/benchmarks/extract_sequences/ctx{ctx}.tsv"
    conda:
        "../envs/metasplice.yaml"
    params:
        windows=lambda wc: SequencesConfig.from_dict(
            CONFIG.get("sequences")
        ).rule_params(wc.ctx),
    script:
        "../workflow_scripts/extract_sequences.py"
