//! The browser and operating system of a session, from its `User-Agent`, as `/auth/me`
//! lists them (Medplum shows them so a person recognises their sessions). Coarse on purpose:
//! a name from a short list, never the raw version string.

/// The browser named by `ua`, or `None` when it names none we know.
pub(super) fn browser(ua: &str) -> Option<&'static str> {
    // Order matters: Edge and Opera also say Chrome; Chrome also says Safari.
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
    ];
    BROWSERS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

/// The operating system named by `ua`, or `None`.
pub(super) fn os(ua: &str) -> Option<&'static str> {
    const SYSTEMS: &[(&str, &str)] = &[
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_user_agents_are_named() {
        let chrome_linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36";
        assert_eq!(
            (browser(chrome_linux), os(chrome_linux)),
            (Some("Chrome"), Some("Linux"))
        );
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        assert_eq!((browser(edge), os(edge)), (Some("Edge"), Some("Windows")));
        let safari_ios = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(
            (browser(safari_ios), os(safari_ios)),
            (Some("Safari"), Some("iOS"))
        );
        let firefox_mac =
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(
            (browser(firefox_mac), os(firefox_mac)),
            (Some("Firefox"), Some("macOS"))
        );
        let android =
            "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36";
        assert_eq!(os(android), Some("Android"));
        assert_eq!((browser("curl/8.5.0"), os("curl/8.5.0")), (None, None));
    }
}
