use super::expr::{CmpOp, Expr, Field, Verdict, address_match};
use super::*;
use crate::attr::attributes;
use netlink_packet_core::NetlinkBuffer;

fn net(text: &str) -> ipnetwork::IpNetwork {
    text.parse().unwrap()
}

/// The payload, mask and compare of an address match, as
/// `(load length, mask, compared bytes)`.
fn shape(exprs: &[Expr]) -> (u32, Option<Vec<u8>>, Vec<u8>) {
    let mut shape = (0, None, Vec::new());
    for expr in exprs {
        match expr {
            Expr::Payload { len, .. } => shape.0 = *len,
            Expr::Mask(mask) => shape.1 = Some(mask.clone()),
            Expr::Cmp { data, .. } => shape.2 = data.clone(),
            _ => {}
        }
    }
    shape
}

#[test]
fn address_matches_take_nfts_shapes() {
    // What `nft --debug=netlink` shows for the same rules (nft 1.0.6).
    let host = address_match(true, Field::Source, net("10.81.0.2/32"), CmpOp::Eq);
    assert_eq!(host.len(), 4, "meta nfproto, cmp, payload, cmp: {host:?}");
    assert_eq!(
        host[1],
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![2]
        }
    );
    assert_eq!(shape(&host), (4, None, vec![10, 81, 0, 2]));
    let aligned = address_match(true, Field::Destination, net("10.81.0.0/24"), CmpOp::Neq);
    assert_eq!(shape(&aligned), (3, None, vec![10, 81, 0]));
    let v6 = address_match(true, Field::Destination, net("fd81::/64"), CmpOp::Neq);
    assert_eq!(shape(&v6), (8, None, vec![0xfd, 0x81, 0, 0, 0, 0, 0, 0]));
    assert_eq!(
        v6[1],
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![10]
        }
    );
    let multicast = address_match(true, Field::Destination, net("224.0.0.0/4"), CmpOp::Eq);
    assert_eq!(
        shape(&multicast),
        (4, Some(vec![0xf0, 0, 0, 0]), vec![0xe0, 0, 0, 0])
    );
    let odd = address_match(false, Field::Destination, net("10.80.0.0/20"), CmpOp::Neq);
    assert_eq!(odd.len(), 3, "no nfproto outside inet: {odd:?}");
    assert_eq!(
        shape(&odd),
        (4, Some(vec![0xff, 0xff, 0xf0, 0]), vec![10, 80, 0, 0])
    );
    let all = address_match(false, Field::Destination, net("0.0.0.0/0"), CmpOp::Neq);
    assert_eq!(shape(&all), (4, Some(vec![0; 4]), vec![0; 4]));
    let v6_odd = address_match(false, Field::Source, net("fd00::/7"), CmpOp::Neq);
    let mut mask = vec![0xfe];
    mask.extend([0; 15]);
    assert_eq!(shape(&v6_odd).1, Some(mask));
}

#[test]
fn comments_are_one_nul_terminated_tlv() {
    let comment = "a545f43c8324953b-f5c4d0d7605f51a7, net: upnet, if: eth0, id: up1";
    let data = comment_userdata(comment);
    // nft shows it as `\x00A<comment>\x00`: type 0, length 65.
    assert_eq!(&data[..2], &[0, 65]);
    assert_eq!(&data[2..66], comment.as_bytes());
    assert_eq!(data[66], 0);
    assert_eq!(userdata_comment(&data).as_deref(), Some(comment));
    assert_eq!(
        userdata_comment(&[1, 2, 9, 9, 0, 2, b'x', 0]).as_deref(),
        Some("x")
    );
    assert_eq!(userdata_comment(&[0, 9, b'x']), None, "cut short");
    assert_eq!(userdata_comment(&[]), None);
    assert_eq!(comment_userdata(&"c".repeat(300)).len(), 2 + 255);
}

/// The messages of a datagram: type, flags, sequence, payload.
fn messages(datagram: &[u8]) -> Vec<(u16, u16, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkBuffer::new_checked(&datagram[offset..]).unwrap();
        offset += (message.length() as usize + 3) & !3;
        out.push((
            message.message_type(),
            message.flags(),
            message.sequence_number(),
            message.payload().to_vec(),
        ));
    }
    out
}

#[test]
fn a_batch_is_begin_requests_end_each_request_acked() {
    let mut batch = Batch::new();
    assert!(batch.is_empty());
    batch.add_table(Family::Inet, "t", Some("c"));
    batch.add_chain(
        Family::Inet,
        "t",
        "post",
        Some(BaseChain::NAT_POSTROUTING),
        None,
    );
    batch.flush_chain(Family::Inet, "t", "post");
    batch.add_rule(
        Family::Inet,
        "t",
        "post",
        &[Expr::Verdict(Verdict::Return)],
        None,
    );
    batch.delete_rule(Family::Inet, "t", "post", 7);
    let got = messages(&batch.datagram(40).unwrap());
    let types: Vec<u16> = got.iter().map(|m| m.0).collect();
    assert_eq!(types, [16, 0xa00, 0xa03, 0xa08, 0xa06, 0xa08, 17]);
    let sequences: Vec<u32> = got.iter().map(|m| m.2).collect();
    assert_eq!(sequences, [40, 41, 42, 43, 44, 45, 46]);
    // The markers: family unspec, version 0, res_id NFNL_SUBSYS_NFTABLES.
    assert_eq!(got[0].3, [0, 0, 0, 10]);
    assert_eq!(got[0].1, 1, "begin is a plain request");
    for request in &got[1..6] {
        assert_eq!(request.1 & 0x5, 0x5, "request and ack: {:#x}", request.1);
        assert_eq!(&request.3[..4], &[1, 0, 0, 0], "family inet");
    }
    assert_eq!(got[1].1 & 0x400, 0x400, "add table creates");
    assert_eq!(got[4].1 & 0xc00, 0xc00, "add rule creates and appends");
}

#[test]
fn a_base_chain_carries_hook_priority_policy_and_type_big_endian() {
    let mut batch = Batch::new();
    batch.add_chain(
        Family::Inet,
        "t",
        "post",
        Some(BaseChain::NAT_POSTROUTING),
        Some("x"),
    );
    let chain = &messages(&batch.datagram(1).unwrap())[1].3;
    let attrs: Vec<_> = attributes(&chain[4..]).map(Result::unwrap).collect();
    let kinds: Vec<u16> = attrs.iter().map(|a| a.kind()).collect();
    assert_eq!(kinds, [1, 3, 4, 5, 7, 12]);
    let hook: Vec<_> = attributes(attrs[2].value()).map(Result::unwrap).collect();
    assert_eq!(hook[0].value(), 4u32.to_be_bytes(), "postrouting");
    assert_eq!(hook[1].value(), 100u32.to_be_bytes(), "srcnat");
    assert_eq!(attrs[3].value(), 1u32.to_be_bytes(), "accept");
    assert_eq!(attrs[4].value(), b"nat\0");
}

#[test]
fn a_goto_names_its_chain_and_return_is_minus_five() {
    let goto = Expr::Verdict(Verdict::Goto("masq_checks".to_owned())).to_attr();
    let mut bytes = vec![0; goto.buffer_len()];
    goto.emit(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("immediate") && text.contains("masq_checks"));
    let ret = Expr::Verdict(Verdict::Return).to_attr();
    let mut bytes = vec![0; ret.buffer_len()];
    ret.emit(&mut bytes);
    let code = (-5i32).to_be_bytes();
    assert!(bytes.windows(4).any(|w| w == code), "{bytes:?}");
}

#[test]
fn a_listed_rule_gives_its_handle_and_comment() {
    let attrs = [
        Attr::Str(NFTA_RULE_TABLE, "t".to_owned()),
        Attr::U64Be(NFTA_RULE_HANDLE, 12),
        Attr::Bytes(NFTA_RULE_USERDATA, comment_userdata("prefix-x, net: n")),
    ];
    let message = Message {
        header: NfGen {
            family: 1,
            res_id: 0,
        },
        attrs: attrs.to_vec(),
    };
    let rule = parse_rule(&message.to_bytes()).unwrap();
    assert_eq!(
        rule,
        RuleInfo {
            handle: 12,
            comment: Some("prefix-x, net: n".to_owned()),
            ..RuleInfo::default()
        }
    );
}

#[test]
fn a_listed_base_chain_gives_its_hook() {
    let mut batch = Batch::new();
    batch.add_chain(
        Family::Inet,
        "t",
        "post",
        Some(BaseChain::NAT_POSTROUTING),
        None,
    );
    let payload = &messages(&batch.datagram(1).unwrap())[1].3;
    let chain = parse_chain(payload, "t").unwrap().unwrap();
    assert_eq!(chain.name, "post");
    let base = chain.base.unwrap();
    assert!(base.is(&BaseChain::NAT_POSTROUTING), "{base:?}");
    assert!(!base.is(&BaseChain {
        kind: "nat",
        hook: 0,
        priority: 100
    }));
    assert_eq!(parse_chain(payload, "other").unwrap(), None);
    let mut batch = Batch::new();
    batch.add_chain(Family::Inet, "t", "plain", None, None);
    let payload = &messages(&batch.datagram(1).unwrap())[1].3;
    assert_eq!(parse_chain(payload, "t").unwrap().unwrap().base, None);
}

#[test]
fn a_listed_rule_gives_its_jump_and_xtables_comment() {
    let exprs = [
        super::xtables::comment("name: \"n\" id: \"c\"").unwrap(),
        Expr::Counter,
        Expr::Verdict(Verdict::Jump("CNI-x".to_owned())),
    ];
    let mut batch = Batch::new();
    batch.append_xt_rule(Family::Ip, "nat", "POSTROUTING", &exprs);
    let payload = &batch.requests()[0].2;
    let rule = parse_rule(payload).unwrap();
    assert_eq!(rule.chain, "POSTROUTING");
    assert_eq!(rule.jump.as_deref(), Some("CNI-x"));
    assert_eq!(rule.xt_comment.as_deref(), Some("name: \"n\" id: \"c\""));
    assert_eq!(rule.comment, None);
    let mut batch = Batch::new();
    batch.append_xt_rule(Family::Ip, "nat", "C", &[Expr::Verdict(Verdict::Accept)]);
    let rule = parse_rule(&batch.requests()[0].2).unwrap();
    assert_eq!((rule.jump, rule.xt_comment), (None, None));
}

#[test]
fn xtables_parts_have_their_extensions_sizes() {
    let Expr::XtMatch(comment) = super::xtables::comment("hi").unwrap() else {
        panic!("not a match")
    };
    assert_eq!(
        (comment.name.as_str(), comment.info.len()),
        ("comment", 256)
    );
    assert!(super::xtables::comment(&"x".repeat(255)).is_some());
    assert!(super::xtables::comment(&"x".repeat(256)).is_none());
    let Expr::XtTarget(v4) = super::xtables::masquerade(false) else {
        panic!("not a target")
    };
    assert_eq!(v4.info.len(), 24);
    assert_eq!(&v4.info[..4], &1u32.to_ne_bytes(), "one range");
    let Expr::XtTarget(v6) = super::xtables::masquerade(true) else {
        panic!("not a target")
    };
    assert_eq!(v6.info, vec![0; 40]);
    assert!(super::xtables::address(Field::Source, net("0.0.0.0/0"), CmpOp::Eq).is_none());
}
