"""Click commands: parse, call one operation, render."""
