"""What a caption is: the structured caption a captioner returns (its fields, parsing, the
template) and the prompts synthesised from it."""
