rule make_demo:
    output:
        genome="resources/demo/genome.fa",
        fai="resources/demo/genome.fa.fai",
        annotation="resources/demo/annotation.tsv",
        splicevardb="resources/demo/splicevardb.tsv",
        truth="resources/demo/truth.tsv",
    log:
        "logs/make_demo.log",
    conda:
        "../envs/metasplice.yaml"
    params:
        demo=CONFIG["demo"],
    script:
        "../workflow_scripts/make_demo.py"
