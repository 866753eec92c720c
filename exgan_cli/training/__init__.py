"""Training, one concern per module (the order a run goes through them):

    dataset.py     the aligned-face cache of a one-folder-per-person data set
    config.py      TrainConfig, recipes and run configs, the run folder's file names
    pairs.py       usable faces, the person split, (target, reference) pairs, batches
    steps.py       the networks, one G and D step, EMA, validation L1 and sample grids
    checkpoint.py  save / resume (tensors, optimizers, every RNG), start from weights
    runtime.py     device, threads, torchrun and DDP, Ctrl-C
    loop.py        train(cfg): the phases of a run
    card.py        the exported generator's model card
    export.py      a run's EMA model as a weights folder
    eye_classifier.py  training the eye-state classifier (its inference: stages/eye_classifier.py)
"""
