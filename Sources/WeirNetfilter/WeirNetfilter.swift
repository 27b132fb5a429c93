public enum WeirNetfilterModule {}
