"""Each chapter's experiments, figures and explorers, one module per book page."""
