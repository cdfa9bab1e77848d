"""Evaluation helpers shared by the evaluator plugins: metrics, feature extraction,
retrieval and checkpoint loading.  Everything here runs eagerly on the CPU (plain torch)."""
