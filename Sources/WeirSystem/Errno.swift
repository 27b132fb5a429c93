import Glibc

/// errno as its symbolic name (`ECONNREFUSED`), for logs and messages; an errno without a name here is written as
/// `errno N (strerror text)`. The one table of errno names in weir.
public func errnoName(_ code: Int32) -> String {
    if let name = errnoNames[code] { return name }
    return "errno \(code) (\(String(cString: strerror(code))))"
}

/// errno as the C library words it (`Connection refused`), for messages people read next to the name.
public func errnoMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

private let errnoNames: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", E2BIG: "E2BIG", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM",
    EACCES: "EACCES", EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", EINVAL: "EINVAL", ENFILE: "ENFILE",
    EMFILE: "EMFILE", ENOSPC: "ENOSPC", EPIPE: "EPIPE", ERANGE: "ERANGE", ELOOP: "ELOOP", EMSGSIZE: "EMSGSIZE",
    EPROTONOSUPPORT: "EPROTONOSUPPORT", EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT",
    EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH",
    ECONNABORTED: "ECONNABORTED", ECONNRESET: "ECONNRESET", ENOBUFS: "ENOBUFS", ETIMEDOUT: "ETIMEDOUT",
    ECONNREFUSED: "ECONNREFUSED", EHOSTDOWN: "EHOSTDOWN", EHOSTUNREACH: "EHOSTUNREACH", EPROTO: "EPROTO",
]

/// errno values for code outside WeirSystem, which does not import Glibc (the import check in `make test`): compare a
/// `SystemError.errno` or a raw call's error with these.
public enum Errno {
    public static var current: Int32 { errno }
    public static let EPERM = Glibc.EPERM, ENOENT = Glibc.ENOENT, EINTR = Glibc.EINTR, EAGAIN = Glibc.EAGAIN
    public static let EWOULDBLOCK = Glibc.EWOULDBLOCK, ENOMEM = Glibc.ENOMEM, EACCES = Glibc.EACCES
    public static let EBUSY = Glibc.EBUSY, EEXIST = Glibc.EEXIST, ENOTDIR = Glibc.ENOTDIR, ENODEV = Glibc.ENODEV
    public static let EINVAL = Glibc.EINVAL, ENFILE = Glibc.ENFILE, EMFILE = Glibc.EMFILE, ENOSPC = Glibc.ENOSPC
    public static let EPIPE = Glibc.EPIPE, ERANGE = Glibc.ERANGE, ELOOP = Glibc.ELOOP, ENOSYS = Glibc.ENOSYS
    public static let ENODATA = Glibc.ENODATA, EPROTO = Glibc.EPROTO, EMSGSIZE = Glibc.EMSGSIZE
    public static let EPROTONOSUPPORT = Glibc.EPROTONOSUPPORT, EOPNOTSUPP = Glibc.EOPNOTSUPP
    public static let EAFNOSUPPORT = Glibc.EAFNOSUPPORT, EADDRINUSE = Glibc.EADDRINUSE
    public static let EADDRNOTAVAIL = Glibc.EADDRNOTAVAIL, ENETDOWN = Glibc.ENETDOWN, ENETUNREACH = Glibc.ENETUNREACH
    public static let ECONNABORTED = Glibc.ECONNABORTED, ECONNRESET = Glibc.ECONNRESET, ENOBUFS = Glibc.ENOBUFS
    public static let ETIMEDOUT = Glibc.ETIMEDOUT, ECONNREFUSED = Glibc.ECONNREFUSED, EHOSTDOWN = Glibc.EHOSTDOWN
    public static let EHOSTUNREACH = Glibc.EHOSTUNREACH, EINPROGRESS = Glibc.EINPROGRESS
}
