"""The common trainer, checkpoint/resume and cost accounting for every family."""
