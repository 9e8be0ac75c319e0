use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

fn refused_range(input: &str) -> RefusedRange {
    match check_syntax(input, &SsrfPolicy::default()) {
        Err(SsrfError::DeniedAddress { range, .. }) => range,
        other => panic!("{input}: expected a refused address, got {other:?}"),
    }
}

#[test]
fn public_urls_are_accepted() {
    let policy = SsrfPolicy::default();
    for input in [
        "https://api.example.com/hooks/1?x=1#f",
        "http://example.com:8080/",
        "HTTPS://Example.COM/",
        "https://example.com./",
        "https://93.184.216.34/",
        "http://8.8.8.8:53/",
        "https://[2606:4700:4700::1111]/",
        "https://[::ffff:8.8.8.8]/",
        "https://[::ffff:0:8.8.8.8]/",
        "https://[64:ff9b::808:808]/",
        "https://[2002:808:808::1]/",
        "https://xn--bcher-kva.example/",
        "https://bücher.example/",
        "https://172.32.0.1/",
        "https://100.128.0.1/",
        "https://169.255.0.1/",
        "https://11.0.0.1/",
        "https://localhost.example.com/",
        "https://internal-api.example.com/",
    ] {
        let url = check_syntax(input, &policy);
        assert!(url.is_ok(), "{input}: {url:?}");
    }
}

#[test]
fn ipv4_ranges_are_refused() {
    use RefusedRange::*;
    for (input, range) in [
        ("http://0.0.0.0/", Unspecified),
        ("http://0.1.2.3/", Unspecified),
        ("http://127.0.0.1/", Loopback),
        ("http://127.255.255.254:8080/", Loopback),
        ("http://10.0.0.1/", Private),
        ("http://10.255.255.255/", Private),
        ("http://172.16.0.1/", Private),
        ("http://172.31.255.255/", Private),
        ("http://192.168.1.1/", Private),
        ("http://100.64.0.1/", SharedAddressSpace),
        ("http://100.127.255.255/", SharedAddressSpace),
        ("http://100.100.100.200/", SharedAddressSpace),
        ("http://169.254.0.1/", LinkLocal),
        ("http://169.254.169.254/latest/meta-data/", CloudMetadata),
        ("http://168.63.129.16/", CloudMetadata),
        ("http://224.0.0.1/", Multicast),
        ("http://239.255.255.250/", Multicast),
        ("http://255.255.255.255/", Broadcast),
        ("http://240.0.0.1/", Reserved),
        ("http://192.0.0.192/", Reserved),
        ("http://198.18.0.1/", Reserved),
        ("http://192.0.2.1/", Documentation),
        ("http://198.51.100.1/", Documentation),
        ("http://203.0.113.1/", Documentation),
    ] {
        assert_eq!(refused_range(input), range, "{input}");
    }
}

#[test]
fn ipv6_ranges_are_refused() {
    use RefusedRange::*;
    for (input, range) in [
        ("http://[::]/", Unspecified),
        ("http://[::1]/", Loopback),
        ("http://[0:0:0:0:0:0:0:1]:8080/", Loopback),
        ("http://[::ffff:127.0.0.1]/", Loopback),
        ("http://[::ffff:7f00:1]/", Loopback),
        ("http://[::ffff:169.254.169.254]/", CloudMetadata),
        ("http://[::ffff:10.0.0.1]/", Private),
        ("http://[::127.0.0.1]/", Reserved),
        ("http://[::ffff:0:127.0.0.1]/", Loopback),
        ("http://[::ffff:0:a9fe:a9fe]/", CloudMetadata),
        ("http://[64:ff9b::a9fe:a9fe]/", CloudMetadata),
        ("http://[64:ff9b:1::1]/", Private),
        ("http://[2002:7f00:1::]/", Loopback),
        ("http://[2002:c0a8:101::1]/", Private),
        ("http://[fc00::1]/", Private),
        ("http://[fd12:3456::1]/", Private),
        ("http://[fd00:ec2::254]/", CloudMetadata),
        ("http://[fec0::1]/", Private),
        ("http://[fe80::1]/", LinkLocal),
        ("http://[febf::1]/", LinkLocal),
        ("http://[ff02::1]/", Multicast),
        ("http://[2001:db8::1]/", Documentation),
        ("http://[3fff::1]/", Documentation),
        ("http://[2001::1]/", Reserved),
        ("http://[100::1]/", Reserved),
    ] {
        assert_eq!(refused_range(input), range, "{input}");
    }
}

#[test]
fn obfuscated_ipv4_forms_are_judged_by_their_value_and_refused_even_when_public() {
    for input in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://127.1/",
        "http://127.0.1/",
        "http://0X7F.0.0.1/",
        "http://127.0.0.1./",
    ] {
        assert_eq!(refused_range(input), RefusedRange::Loopback, "{input}");
    }
    assert_eq!(refused_range("http://0xa9fea9fe/"), RefusedRange::CloudMetadata);
    // A public address written oddly is still refused: other parsers may read it otherwise
    // (`010.8.8.8` is 8.8.8.8 in octal here, 10.8.8.8 in decimal elsewhere).
    let policy = SsrfPolicy::default();
    for input in ["http://134744072/", "http://0x8.8.8.8/", "http://010.8.8.8/", "http://8.8.8.8./"] {
        assert_eq!(check_syntax(input, &policy), Err(SsrfError::NonCanonicalIp), "{input}");
    }
}

#[test]
fn hostnames_are_refused_with_their_subdomains() {
    let policy = SsrfPolicy::default();
    for (input, host) in [
        ("http://localhost/", "localhost"),
        ("http://LOCALHOST:8080/", "localhost"),
        ("http://localhost./", "localhost"),
        ("http://api.localhost/", "api.localhost"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
        ("http://metadata/", "metadata"),
        ("http://instance-data/latest/", "instance-data"),
        ("http://printer.local/", "printer.local"),
        ("http://localhost.localdomain/", "localhost.localdomain"),
        ("http://router.home.arpa/", "router.home.arpa"),
        ("http://ⓛocalhost/", "localhost"),
    ] {
        assert_eq!(check_syntax(input, &policy), Err(SsrfError::DeniedHost { host: host.to_owned() }), "{input}");
    }
    let open = SsrfPolicy { denied_hosts: Vec::new(), ..SsrfPolicy::default() };
    assert!(check_syntax("http://localhost/", &open).is_ok());
}

#[test]
fn schemes_outside_the_allow_list_are_refused() {
    let policy = SsrfPolicy::default();
    for (input, scheme) in [
        ("file:///etc/passwd", "file"),
        ("gopher://example.com:70/_x", "gopher"),
        ("ftp://example.com/", "ftp"),
        ("dict://example.com:11211/", "dict"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/plain,hi", "data"),
        ("ws://example.com/", "ws"),
    ] {
        assert_eq!(check_syntax(input, &policy), Err(SsrfError::Scheme { scheme: scheme.to_owned() }), "{input}");
    }
    let https_only = SsrfPolicy { allowed_schemes: vec!["https".to_owned()], ..SsrfPolicy::default() };
    assert!(check_syntax("https://example.com/", &https_only).is_ok());
    assert!(check_syntax("http://example.com/", &https_only).is_err());
}

#[test]
fn userinfo_tricks_are_refused() {
    let policy = SsrfPolicy::default();
    for input in [
        "http://example.com@127.0.0.1/",
        "http://user:pass@example.com/",
        "http://:pass@example.com/",
        "http://@example.com/",
        "http://example.com:80@evil.example/",
        "http://a@b@example.com/",
    ] {
        let result = check_syntax(input, &policy);
        assert!(matches!(result, Err(SsrfError::Userinfo | SsrfError::DeniedAddress { .. })), "{input}: {result:?}");
    }
    assert_eq!(check_syntax("http://trusted.example@evil.example/", &policy), Err(SsrfError::Userinfo));
    // `@` after the authority is not userinfo.
    assert!(check_syntax("https://example.com/users/@me?by=a@b", &policy).is_ok());
}

#[test]
fn syntax_that_parsers_disagree_on_is_refused() {
    let policy = SsrfPolicy::default();
    for input in [
        "http://example.com\\@127.0.0.1/",
        "http:\\\\127.0.0.1/",
        " http://example.com/",
        "http://example.com/\n",
        "http://exa\tmple.com/",
        "http:example.com/",
        "http:/example.com/",
        "http:///example.com/",
        "http://ex%61mple.com/",
        "http://%31%32%37.0.0.1/",
    ] {
        let result = check_syntax(input, &policy);
        assert!(matches!(result, Err(SsrfError::Ambiguous | SsrfError::DeniedAddress { .. })), "{input}: {result:?}");
    }
    assert_eq!(check_syntax("http://ex%61mple.com/", &policy), Err(SsrfError::Ambiguous));
}

#[test]
fn malformed_and_oversized_urls_are_refused() {
    let policy = SsrfPolicy::default();
    assert!(matches!(check_syntax("not a url", &policy), Err(SsrfError::Ambiguous)));
    assert!(matches!(check_syntax("example.com/path", &policy), Err(SsrfError::Invalid(_))));
    assert!(matches!(check_syntax("http://[::1/", &policy), Err(SsrfError::Invalid(_))));
    assert!(matches!(check_syntax("http://256.0.0.1/", &policy), Err(SsrfError::Invalid(_))));
    assert!(matches!(check_syntax("http://[fe80::1%25eth0]/", &policy), Err(SsrfError::Invalid(_))));
    let long = format!("https://example.com/{}", "a".repeat(2048));
    assert_eq!(check_syntax(&long, &policy), Err(SsrfError::TooLong { max: 2048 }));
}

#[test]
fn operator_networks_are_refused_too() {
    let policy = SsrfPolicy {
        denied_networks: vec!["203.0.114.0/24".parse().unwrap(), "2a00:1::/32".parse().unwrap()],
        ..SsrfPolicy::default()
    };
    for input in ["https://203.0.114.9/", "https://[::ffff:203.0.114.9]/", "https://[2a00:1::5]/"] {
        assert!(
            matches!(check_syntax(input, &policy), Err(SsrfError::DeniedAddress { range: RefusedRange::Denied, .. })),
            "{input}"
        );
    }
    assert!(check_syntax("https://203.0.115.9/", &policy).is_ok());
}

#[tokio::test]
async fn resolution_refuses_names_that_resolve_inside() {
    // `localhost` resolves (from /etc/hosts) to loopback: refused by address once the name rule
    // is lifted.
    let by_address = SsrfPolicy { denied_hosts: Vec::new(), ..SsrfPolicy::default() };
    match check("http://localhost:8080/", &by_address).await {
        Err(SsrfError::DeniedAddress { address, range }) => {
            assert!(address.is_loopback(), "{address}");
            assert_eq!(range, RefusedRange::Loopback);
        }
        other => panic!("expected loopback, got {other:?}"),
    }
    // And by name under the default policy, without resolving.
    assert!(matches!(check("http://localhost/", &SsrfPolicy::default()).await, Err(SsrfError::DeniedHost { .. })));
}

#[tokio::test]
async fn resolution_accepts_public_literals_and_refuses_private_ones() {
    let policy = SsrfPolicy::default();
    assert_eq!(check("https://93.184.216.34/", &policy).await, Ok(()));
    assert_eq!(check("https://[2606:4700::1111]/", &policy).await, Ok(()));
    assert!(check("https://10.1.2.3/", &policy).await.is_err());
    assert!(check("https://[::1]/", &policy).await.is_err());
    assert!(check("file:///etc/passwd", &policy).await.is_err());
}

#[test]
fn classify_leaves_public_addresses_alone() {
    for address in [
        IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(9, 255, 255, 255)),
        IpAddr::V4(Ipv4Addr::new(126, 255, 255, 255)),
        IpAddr::V4(Ipv4Addr::new(128, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(223, 255, 255, 255)),
        "2001:4860:4860::8888".parse().unwrap(),
        "2a00:1450::1".parse().unwrap(),
    ] {
        assert_eq!(classify(address), None, "{address}");
    }
}

proptest! {
    #[test]
    fn never_panics(input in ".{0,80}") {
        let _ = check_syntax(&input, &SsrfPolicy::default());
    }

    #[test]
    fn never_panics_on_url_like_text(input in "(https?|file)://[a-z0-9.:@\\[\\]%/?#\\\\-]{0,40}") {
        let _ = check_syntax(&input, &SsrfPolicy::default());
    }

    #[test]
    fn every_accepted_literal_is_outside_the_refused_ranges(a in any::<[u8; 4]>()) {
        let address = Ipv4Addr::from(a);
        let input = format!("http://{address}/");
        let accepted = check_syntax(&input, &SsrfPolicy::default()).is_ok();
        prop_assert_eq!(accepted, classify(IpAddr::V4(address)).is_none());
        let mapped = format!("http://[{}]/", address.to_ipv6_mapped());
        prop_assert_eq!(check_syntax(&mapped, &SsrfPolicy::default()).is_ok(), accepted);
    }
}
