import Glibc

/// errno as its symbolic name (`ECONNREFUSED`), for logs and messages; an errno without a name here is written as
/// `errno N (strerror text)`. The one table of errno names in weir.
public func errnoName(_ code: Int32) -> String {
    if let name = errnoNames[code] { return name }
    return "errno \(code) (\(String(cString: strerror(code))))"
}

private let errnoNames: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", E2BIG: "E2BIG", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
    EACCES: "EACCES", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", EINVAL: "EINVAL", ENFILE: "ENFILE",
    EMFILE: "EMFILE", ENOSPC: "ENOSPC", EPIPE: "EPIPE", ERANGE: "ERANGE", ELOOP: "ELOOP", EMSGSIZE: "EMSGSIZE",
    EPROTONOSUPPORT: "EPROTONOSUPPORT", EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT",
    EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH",
    ECONNABORTED: "ECONNABORTED", ECONNRESET: "ECONNRESET", ENOBUFS: "ENOBUFS", ETIMEDOUT: "ETIMEDOUT",
    ECONNREFUSED: "ECONNREFUSED", EHOSTDOWN: "EHOSTDOWN", EHOSTUNREACH: "EHOSTUNREACH", EPROTO: "EPROTO",
]
