// Placeholder until the proxy module lands.
public enum WeirProxyModule {}
