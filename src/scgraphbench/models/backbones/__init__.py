"""What the pretrained backbone families (``models/backbone_scgpt.py``,
``models/backbone_geneformer.py``) are built from, one module per concern:

- :mod:`.checkpoint`: the checkpoint folder (checks, JSON files, fetching, freezing layers);
- :mod:`.vocabulary`: matching the dataset's genes to a backbone's vocabulary;
- :mod:`.attention`: the injected attention's settings and its gene graph;
- :mod:`.scgpt_checkpoint`, :mod:`.scgpt_modules`, :mod:`.scgpt_binning`: scGPT's
  args.json and weights, its modules, its value binning;
- :mod:`.geneformer_checkpoint`: Geneformer's dictionaries and BERT weights.

The attention core itself is a kernel: :mod:`scgraphbench.kernels.injected`.
"""
