//! Reading a resolv.conf-format file into the result's `dns`.

use cni_types::result::Dns;

/// Parses resolv.conf text as the reference does: lines are trimmed; empty
/// lines, `#`/`;` comments and lines with fewer than two fields are skipped;
/// `nameserver` appends one server, `domain` sets the domain (last wins),
/// `search` and `options` append all their fields.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [keyword, values @ ..] = fields.as_slice() else {
            continue;
        };
        let Some(first) = values.first() else {
            continue;
        };
        let owned = || values.iter().map(|v| (*v).to_owned());
        match *keyword {
            "nameserver" => dns.nameservers.push((*first).to_owned()),
            "domain" => dns.domain = (*first).to_owned(),
            "search" => dns.search.extend(owned()),
            "options" => dns.options.extend(owned()),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        let dns = parse_resolv_conf(
            "# comment\n; other comment\nnameserver 10.0.0.1\n  nameserver 10.0.0.2 extra\n\
             domain a.example\ndomain b.example\nsearch s1 s2\nsearch s3\noptions ndots:5 rotate\n\
             nameserver\nbogus line here\n\n",
        );
        assert_eq!(dns.nameservers, vec!["10.0.0.1", "10.0.0.2"]);
        assert_eq!(dns.domain, "b.example");
        assert_eq!(dns.search, vec!["s1", "s2", "s3"]);
        assert_eq!(dns.options, vec!["ndots:5", "rotate"]);
    }

    #[test]
    fn empty_file_gives_empty_dns() {
        assert!(parse_resolv_conf("").is_empty());
    }
}
