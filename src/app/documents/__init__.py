"""Documents a person can present or read: the QBR as HTML, Markdown and a PowerPoint deck, and the wording layer."""
