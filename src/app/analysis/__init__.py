"""Pure, deterministic analysis of account records: signals, health scores, expansion, adoption, QBR facts."""
