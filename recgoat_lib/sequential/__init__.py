"""Sequential recommendation on the same data: the protocol DMESR (the sequential neighbour) is judged by.

Layered bottom-up, each module importing only those listed before it:

- `data`: the leave-one-out split, `SequenceData` (left-padded next-item sequences) and the
  frozen LM item views;
- `models`: the `SequentialRecommender` interface, the SASRec / GRU4Rec backbones and the
  reconstructed DMESR*, registered in `SEQUENTIAL_MODELS`;
- `evaluate`: full ranking minus the user's history, and the sampled-100 variant;
- `train`: `train_sequential`, next-item training through the one training loop (`train.fit`);
  `runner.run` calls it for a sequential spec.
"""
