"""Self-supervised pretraining (SimCLR, MICLe) of a backbone whose encoder `init: ssl:RUN_DIR` loads."""
