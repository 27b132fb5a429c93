// Placeholder until the tuning module lands.
public enum WeirTuningModule {}
