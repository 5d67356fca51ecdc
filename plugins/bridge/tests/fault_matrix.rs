//! Every failure point of ADD and DEL, for every config shape, without root.
//!
//! The bridge plugin's steps run against an in-memory model of the node
//! (`model/`) through the same dispatcher a runtime's call goes through. For
//! each config, ADD runs with operation N failing, for N = 1, 2, … up to
//! the number of operations a fault-free ADD makes. After each failed ADD
//! the node must be exactly as before (on a node where another pod is
//! attached), or as before but for what every pod of the network shares
//! (on a node without the network: the bridge and forwarding stay), and the
//! error must carry the right code. DEL runs the same way after a successful
//! ADD, then again without faults, and must leave the node clean.

#![cfg(test)]

mod model;

use cni_types::skel::Outcome;
use model::{Model, State, World, call};
use serde_json::{Value, json};
use std::io::Write as _;

const POD: &str = "/run/netns/pod";
const OTHER_POD: &str = "/run/netns/other";
const CRIO: &str = include_str!("../../../cni-types/tests/fixtures/100-crio-bridge.conf");

/// A config shape and the node it starts on.
struct Shape {
    name: &'static str,
    config: Value,
    /// Changes the node before anything runs (e.g. a bridge already there).
    prepare: fn(&mut World),
}

fn crio() -> Value {
    serde_json::from_str(CRIO).unwrap()
}

fn with(mut config: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

fn l2(changes: Value) -> Value {
    let base = json!({"cniVersion": "1.0.0", "name": "l2net", "type": "bridge", "bridge": "br-l2"});
    with(base, changes)
}

/// A bridge that is already there with an address that conflicts with the
/// gateway of `forceAddress` shapes.
fn conflicting_bridge(world: &mut World) {
    let index = world.add_link(model::HOST, "cni0", "bridge", true);
    let bridge = world.namespace(model::HOST).links.get_mut(&index).unwrap();
    bridge.addresses.insert("10.85.99.1/16".parse().unwrap());
}

fn nothing(_: &mut World) {}

fn shapes() -> Vec<Shape> {
    let prev =
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo", "sandbox": POD}], "ips": []});
    vec![
        Shape {
            name: "CRI-O 100-crio-bridge.conf",
            config: crio(),
            prepare: nothing,
        },
        Shape {
            name: "CRI-O at 1.0.0 in a conflist, with prevResult",
            config: with(crio(), json!({"cniVersion": "1.0.0", "prevResult": prev})),
            prepare: nothing,
        },
        Shape {
            name: "macspoofchk",
            config: with(crio(), json!({"macspoofchk": true})),
            prepare: nothing,
        },
        Shape {
            name: "L2 only",
            config: l2(json!({})),
            prepare: nothing,
        },
        Shape {
            name: "disableContainerInterface",
            config: l2(json!({"disableContainerInterface": true})),
            prepare: nothing,
        },
        Shape {
            name: "vlan",
            config: with(crio(), json!({"isGateway": false, "vlan": 100})),
            prepare: nothing,
        },
        Shape {
            name: "vlan with isGateway",
            config: with(crio(), json!({"vlan": 100})),
            prepare: nothing,
        },
        Shape {
            name: "vlanTrunk",
            config: l2(json!({"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 202}]})),
            prepare: nothing,
        },
        Shape {
            name: "isDefaultGateway with forceAddress",
            config: with(
                crio(),
                json!({"isDefaultGateway": true, "forceAddress": true, "ipam": {
                    "type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}]]}}),
            ),
            prepare: conflicting_bridge,
        },
        Shape {
            name: "mtu and mac",
            config: with(
                crio(),
                json!({"mtu": 1400, "runtimeConfig": {"mac": "0e:00:00:00:00:42"}}),
            ),
            prepare: nothing,
        },
        Shape {
            name: "ipMasq off",
            config: with(crio(), json!({"ipMasq": false})),
            prepare: nothing,
        },
    ]
}

/// Where an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Before the operation changes anything.
    Before,
    /// After a helper or the IPAM plugin applied its change (see
    /// `World::fault_after`).
    After,
}

/// Runs `command` on `world` with operation `fail_at` failing (`fault`
/// says when); returns the outcome and the world after it.
fn run_faulted(
    world: &World,
    command: &str,
    config: &Value,
    fail_at: Option<usize>,
    fault: Fault,
) -> (Outcome, World) {
    let mut world = world.clone();
    world.ops.clear();
    world.failed = None;
    world.fail_at = fail_at;
    world.fault_after = fault == Fault::After;
    let model = Model::new(world);
    let outcome = call(&model, command, "pod", POD, config);
    let mut world = model.world.into_inner();
    world.fail_at = None;
    world.fault_after = false;
    (outcome, world)
}

/// [`run_faulted`] with faults before the operation.
fn run(world: &World, command: &str, config: &Value, fail_at: Option<usize>) -> (Outcome, World) {
    run_faulted(world, command, config, fail_at, Fault::Before)
}

/// Operations that can fail after applying their change: helpers and the
/// IPAM plugin (an nf_tables transaction, like a netlink request, answers
/// with the outcome of what it did).
fn can_fail_after(op: &str) -> bool {
    op.starts_with("IPAM") || op.starts_with("iptables-restore")
}

/// The node a shape starts on: empty (`busy` false) or with another pod
/// of the same network attached.
fn start(shape: &Shape, busy: bool) -> World {
    let mut world = World::new();
    (shape.prepare)(&mut world);
    world.add_pod(POD);
    if busy {
        world.add_pod(OTHER_POD);
        let model = Model::new(world);
        let added = call(&model, "ADD", "other", OTHER_POD, &shape.config);
        assert!(added.success, "{}: {}", shape.name, text(&added));
        world = model.world.into_inner();
    }
    world.ops.clear();
    world
}

fn text(outcome: &Outcome) -> String {
    String::from_utf8_lossy(&outcome.stdout).into_owned()
}

fn code(outcome: &Outcome) -> u64 {
    serde_json::from_slice::<Value>(&outcome.stdout).unwrap()["code"]
        .as_u64()
        .unwrap_or_default()
}

/// The code a fault in operation `op` must give: the IPAM plugin's own,
/// else the plugin's internal error.
fn expected_code(op: &str) -> u64 {
    if op.starts_with("IPAM") {
        u64::from(model::ipam_fault_code())
    } else {
        999
    }
}

/// Operations whose failure the plugin ignores, as the reference does.
fn best_effort(op: &str) -> bool {
    op.starts_with("sysctl ") || op == "set addrgenmode none" || op == "set arp_notify"
}

/// `state` without the part a DEL failing in `op` may leave for its retry:
/// what that one step removes. Everything else DEL must still do.
fn without_residue_of(op: &str, state: &State) -> State {
    let mut state = state.clone();
    if op.starts_with("IPAM") {
        state.leases.clear();
    } else if op.starts_with("iptables") {
        state.masquerade.clear();
    } else if op == "nf_tables spoof check" {
        state.spoof_rules.clear();
    } else {
        state.namespaces.clear();
    }
    state
}

/// Whether `now` is `before`: exactly on a busy node, but for what the
/// network's pods share on an empty one.
fn same(now: &State, before: &State, bridge: &str, busy: bool) -> bool {
    if busy {
        now == before
    } else {
        World::without_shared(now, bridge) == World::without_shared(before, bridge)
    }
}

fn bridge_of(shape: &Shape) -> String {
    shape.config["bridge"].as_str().unwrap().to_owned()
}

/// The tally of one verb's matrix.
#[derive(Default)]
struct Tally {
    cases: usize,
    problems: Vec<String>,
}

impl Tally {
    /// Prints the tally's line (straight to stderr, which the test harness
    /// does not capture, so every run shows it) and fails on any problem.
    fn report(&self, verb: &str, configs: usize) {
        let line = format!(
            "fault-matrix {verb}: {configs} configs, {} cases, {} leaks\n",
            self.cases,
            self.problems.len()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        assert!(self.problems.is_empty(), "{}", self.problems.join("\n"));
    }
}

/// The faults to inject into operation `op`: before, and also after where
/// it can fail after applying its change.
fn faults_for(op: &str) -> &'static [Fault] {
    if can_fail_after(op) {
        &[Fault::Before, Fault::After]
    } else {
        &[Fault::Before]
    }
}

/// ADD with each operation failing in turn.
fn add_matrix(shape: &Shape, busy: bool, tally: &mut Tally) {
    let before = start(shape, busy);
    let (clean, after) = run(&before, "ADD", &shape.config, None);
    assert!(clean.success, "{}: {}", shape.name, text(&clean));
    for (index, op) in after.ops.iter().enumerate() {
        for &fault in faults_for(op) {
            tally.cases += 1;
            if let Err(problem) = add_case(shape, busy, &before, index + 1, fault) {
                tally.problems.push(problem);
            }
        }
    }
}

/// One ADD with operation `n` failing.
fn add_case(
    shape: &Shape,
    busy: bool,
    before: &World,
    n: usize,
    fault: Fault,
) -> Result<(), String> {
    let bridge = bridge_of(shape);
    let (outcome, world) = run_faulted(before, "ADD", &shape.config, Some(n), fault);
    let op = world.failed.clone().unwrap_or_default();
    let case = format!(
        "{} (busy: {busy}), ADD failing {fault:?} {n} ({op})",
        shape.name
    );
    if outcome.success {
        let (deleted, world) = run(&world, "DEL", &shape.config, None);
        if !best_effort(&op) {
            return Err(format!("{case}: succeeded"));
        }
        if !deleted.success || !same(&world.state, &before.state, &bridge, busy) {
            return Err(format!("{case}: DEL after it left {world:#?}"));
        }
    } else if !same(&world.state, &before.state, &bridge, busy) {
        return Err(format!(
            "{case}: leaked\n{:#?}\nvs\n{:#?}",
            world.state, before.state
        ));
    } else if code(&outcome) != expected_code(&op) {
        return Err(format!("{case}: {}", text(&outcome)));
    }
    Ok(())
}

/// What a DEL case starts from: the node after a successful ADD, the node
/// DEL must return to, and DEL's config (with the ADD's result as
/// `prevResult` where the shape has one).
struct Attached {
    before: World,
    attached: World,
    config: Value,
}

impl Attached {
    /// With `netns_gone`, the pod's namespace is deleted after the ADD.
    fn new(shape: &Shape, busy: bool, netns_gone: bool) -> Attached {
        let mut before = start(shape, busy);
        let (added, mut attached) = run(&before, "ADD", &shape.config, None);
        assert!(added.success, "{}: {}", shape.name, text(&added));
        let mut config = shape.config.clone();
        if shape.config.get("prevResult").is_some() {
            config["prevResult"] = serde_json::from_slice(&added.stdout).unwrap();
        }
        if netns_gone {
            attached.delete_pod(POD);
            before.delete_pod(POD);
        }
        Attached {
            before,
            attached,
            config,
        }
    }
}

/// DEL with each operation failing in turn, then DEL again without faults.
/// With `netns_gone`, the pod's namespace is deleted between ADD and DEL.
fn del_matrix(shape: &Shape, busy: bool, netns_gone: bool, tally: &mut Tally) {
    let start = Attached::new(shape, busy, netns_gone);
    let (clean, after) = run(&start.attached, "DEL", &start.config, None);
    assert!(clean.success, "{}: {}", shape.name, text(&clean));
    for (index, op) in after.ops.iter().enumerate() {
        for &fault in faults_for(op) {
            tally.cases += 1;
            let case = format!(
                "{} (busy: {busy}, netns gone: {netns_gone}), DEL failing {fault:?} {} ({op})",
                shape.name,
                index + 1
            );
            if let Err(problem) = del_case(shape, busy, &start, index + 1, fault) {
                tally.problems.push(format!("{case}: {problem}"));
            }
        }
    }
}

/// One DEL with operation `n` failing, then its retry.
fn del_case(
    shape: &Shape,
    busy: bool,
    start: &Attached,
    n: usize,
    fault: Fault,
) -> Result<(), String> {
    let bridge = bridge_of(shape);
    let before = &start.before.state;
    let (outcome, world) = run_faulted(&start.attached, "DEL", &start.config, Some(n), fault);
    let op = world.failed.clone().unwrap_or_default();
    let kept_going = same(
        &without_residue_of(&op, &world.state),
        &without_residue_of(&op, before),
        &bridge,
        busy,
    );
    let (retried, world) = run(&world, "DEL", &start.config, None);
    if outcome.success {
        Err("the failure was not reported".to_owned())
    } else if !kept_going {
        Err("stopped at the failure".to_owned())
    } else if code(&outcome) != expected_code(&op) {
        Err(text(&outcome))
    } else if !retried.success || !same(&world.state, before, &bridge, busy) {
        Err(format!("the retried DEL left {:#?}", world.state))
    } else {
        Ok(())
    }
}

#[test]
fn every_failure_point_of_add_rolls_back() {
    let shapes = shapes();
    let mut tally = Tally::default();
    for shape in &shapes {
        for busy in [false, true] {
            add_matrix(shape, busy, &mut tally);
        }
    }
    tally.report("ADD", shapes.len());
}

#[test]
fn every_failure_point_of_del_is_cleaned_by_a_retry() {
    let shapes = shapes();
    let mut tally = Tally::default();
    for shape in &shapes {
        for busy in [false, true] {
            for netns_gone in [false, true] {
                del_matrix(shape, busy, netns_gone, &mut tally);
            }
        }
    }
    tally.report("DEL", shapes.len());
}
