use super::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

/// 2021-08-27T11:55:52Z, the wrapper example's start time.
const EXAMPLE_SECOND: i64 = 1_630_065_352;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn zone(name: &str) -> LocalZone {
    LocalZone::Known(TimeZone::get(name).unwrap())
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn tracer(dir: &Path, owner: u32) -> Tracer {
    Tracer::new(dir, "bridge", zone("UTC"), at(EXAMPLE_SECOND), owner)
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn refusal(result: Result<PathBuf, TraceError>) -> Refusal {
    match result {
        Err(TraceError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn only_one_enables() {
    assert!(is_enabled(Some(OsStr::new("1"))));
    for off in ["0", "", "true", "yes", " 1", "1 "] {
        assert!(!is_enabled(Some(OsStr::new(off))), "{off:?}");
    }
    assert!(!is_enabled(None));
}

#[test]
fn formats_like_date() {
    let t = at(EXAMPLE_SECOND);
    assert_eq!(
        zone("America/New_York").format(t),
        "Fri Aug 27 07:55:52 EDT 2021"
    );
    assert_eq!(zone("UTC").format(t), "Fri Aug 27 11:55:52 UTC 2021");
    assert_eq!(
        LocalZone::Known(TimeZone::UTC).format(t),
        "Fri Aug 27 11:55:52 UTC 2021"
    );
    assert_eq!(zone("Asia/Dubai").format(t), "Fri Aug 27 15:55:52 +04 2021");
    // %e pads the day with a space.
    let new_year = at(1_609_459_200);
    assert_eq!(
        zone("Australia/Sydney").format(new_year),
        "Fri Jan  1 11:00:00 AEDT 2021"
    );
    assert_eq!(
        zone("America/New_York").format(new_year),
        "Thu Dec 31 19:00:00 EST 2020"
    );
}

#[test]
fn keeps_the_case_of_posix_abbreviations() {
    let posix = LocalZone::Known(TimeZone::posix("abc5").unwrap());
    assert_eq!(
        posix.format(at(EXAMPLE_SECOND)),
        "Fri Aug 27 06:55:52 abc 2021"
    );
}

#[test]
fn invalid_tz_prints_what_glibc_prints() {
    for (tz, abbreviation) in [
        ("Foo/Bar", "Foo"),
        ("Europe/Nowhere", "Europe"),
        (":garbage", "garbage"),
        ("abc+", "abc"),
        ("X", ""),
        ("ab", ""),
        ("1abc", ""),
        ("/nonexistent", ""),
    ] {
        assert_eq!(glibc_fallback_abbreviation(tz), abbreviation, "{tz}");
    }
    let unknown = LocalZone::Unknown {
        abbreviation: "Foo".to_owned(),
    };
    assert_eq!(
        unknown.format(at(EXAMPLE_SECOND)),
        "Fri Aug 27 11:55:52 Foo 2021"
    );
}

#[test]
fn record_has_the_wrapper_layout() {
    let env = vars(&[
        ("CNI_PATH", "/opt/cni/bin"),
        ("LANG", "en_US.UTF-8"),
        ("CNI_COMMAND", "ADD"),
        ("NOTE", "see the CNI spec"),
        ("MULTI", "one\nCNI two"),
        ("PATH", "/usr/bin"),
    ]);
    let record = Record {
        start: "Fri Aug 27 07:55:52 EDT 2021",
        end: "Fri Aug 27 07:55:53 EDT 2021",
        vars: &env,
        input: br#"{"cniVersion":"0.3.1","name":"crio","type":"bridge"}"#,
        output: b"{\n    \"cniVersion\": \"0.3.1\"\n}",
    };
    let expected = format!(
        "Fri Aug 27 07:55:52 EDT 2021\n\
         {RULE}\n\
         CNI params:\n\
         CNI_PATH=/opt/cni/bin\n\
         CNI_COMMAND=ADD\n\
         NOTE=see the CNI spec\n\
         CNI two\n\
         env:\n\
         CNI_PATH=/opt/cni/bin\n\
         LANG=en_US.UTF-8\n\
         CNI_COMMAND=ADD\n\
         NOTE=see the CNI spec\n\
         MULTI=one\n\
         CNI two\n\
         PATH=/usr/bin\n\
         INPUT:\n\
         {{\"cniVersion\":\"0.3.1\",\"name\":\"crio\",\"type\":\"bridge\"}}\n\
         OUTPUT:\n\
         {{\n    \"cniVersion\": \"0.3.1\"\n}}\n\
         Returned at: Fri Aug 27 07:55:53 EDT 2021\n\
         {RULE}\n\
         \n\
         \n"
    );
    assert_eq!(String::from_utf8(record.to_bytes()).unwrap(), expected);
    assert_eq!(RULE.len(), 65);
    assert!(RULE.bytes().all(|b| b == b'='));
}

#[test]
fn empty_input_and_output_still_get_their_lines() {
    let record = Record {
        start: "S",
        end: "E",
        vars: &[],
        input: b"",
        output: b"",
    };
    let expected =
        format!("S\n{RULE}\nCNI params:\nenv:\nINPUT:\n\nOUTPUT:\n\nReturned at: E\n{RULE}\n\n\n");
    assert_eq!(String::from_utf8(record.to_bytes()).unwrap(), expected);
}

#[test]
fn non_utf8_environment_is_kept_byte_for_byte() {
    use std::os::unix::ffi::OsStringExt;
    let env = vec![(
        OsString::from("CNI_ARGS"),
        OsString::from_vec(vec![b'a', 0xff, b'b']),
    )];
    let record = Record {
        start: "S",
        end: "E",
        vars: &env,
        input: &[0xfe],
        output: b"",
    };
    let bytes = record.to_bytes();
    assert!(contains(
        &bytes,
        b"CNI params:\nCNI_ARGS=a\xffb\nenv:\nCNI_ARGS=a\xffb\n"
    ));
    assert!(contains(&bytes, b"INPUT:\n\xfe\nOUTPUT:\n"));
}

#[test]
fn tracer_formats_start_and_end_in_its_zone() {
    let tracer = Tracer::new(
        "/unused",
        "host-local",
        zone("America/New_York"),
        at(EXAMPLE_SECOND),
        0,
    );
    assert_eq!(tracer.path(), Path::new("/unused/host-local"));
    let bytes = tracer.record(&[], b"in", b"out", at(EXAMPLE_SECOND + 61));
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("Fri Aug 27 07:55:52 EDT 2021\n"), "{text}");
    assert!(
        text.contains("\nReturned at: Fri Aug 27 07:56:53 EDT 2021\n"),
        "{text}"
    );
}

#[test]
fn from_env_is_off_unless_cni_trace_is_1() {
    for env in [
        CniEnv::from_vars(vars(&[("CNI_COMMAND", "ADD")])),
        CniEnv::from_vars(vars(&[("CNI_TRACE", "0")])),
        CniEnv::from_vars(vars(&[("CNI_TRACE", "")])),
    ] {
        assert!(Tracer::from_env(&env).is_none());
        assert!(CallTrace::start(&env).is_none());
    }
}

#[test]
fn from_env_picks_the_directory() {
    let on = CniEnv::from_vars(vars(&[("CNI_TRACE", "1")]));
    let tracer = Tracer::from_env(&on).unwrap().unwrap();
    assert_eq!(tracer.dir, Path::new(DEFAULT_DIR));
    assert_eq!(tracer.owner, euid());
    assert!(!tracer.file_name.is_empty());

    let empty_dir = CniEnv::from_vars(vars(&[("CNI_TRACE", "1"), ("CNI_TRACE_DIR", "")]));
    let tracer = Tracer::from_env(&empty_dir).unwrap().unwrap();
    assert_eq!(tracer.dir, Path::new(DEFAULT_DIR));

    let custom = CniEnv::from_vars(vars(&[("CNI_TRACE_DIR", "/x/y"), ("CNI_TRACE", "1")]));
    let tracer = Tracer::from_env(&custom).unwrap().unwrap();
    assert_eq!(tracer.dir, Path::new("/x/y"));
}

#[test]
fn missing_directory_is_created_0700_and_file_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("log");
    let tracer = tracer(&dir, euid());
    let path = tracer.append(b"first\n").unwrap();
    assert_eq!(path, dir.join("bridge"));
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&path), 0o600);
    tracer.append(b"second\n").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first\nsecond\n");
}

#[test]
fn existing_safe_directory_and_file_are_used_as_they_are() {
    // What the wrapper leaves behind with umask 022: 0755 and 0644.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("bridge"), b"old\n").unwrap();
    fs::set_permissions(dir.join("bridge"), fs::Permissions::from_mode(0o644)).unwrap();
    tracer(&dir, euid()).append(b"new\n").unwrap();
    assert_eq!(fs::read(dir.join("bridge")).unwrap(), b"old\nnew\n");
    assert_eq!(mode_of(&dir), 0o755);
    assert_eq!(mode_of(&dir.join("bridge")), 0o644);
}

#[test]
fn symlinked_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    fs::create_dir(&target).unwrap();
    let link = tmp.path().join("log");
    symlink(&target, &link).unwrap();
    assert_eq!(
        refusal(tracer(&link, euid()).append(b"x")),
        Refusal::Symlink
    );
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);

    // A dangling link is not created through either.
    let dangling = tmp.path().join("dangling");
    symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    assert_eq!(
        refusal(tracer(&dangling, euid()).append(b"x")),
        Refusal::Symlink
    );
    assert!(!tmp.path().join("nowhere").exists());
}

#[test]
fn world_or_group_writable_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o1777, 0o770, 0o702] {
        let dir = tmp.path().join(format!("log{mode:o}"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(
            refusal(tracer(&dir, euid()).append(b"x")),
            Refusal::Writable { mode },
            "{mode:o}"
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }
}

#[test]
fn directory_of_another_owner_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let me = euid();
    let other = me.wrapping_add(1);
    assert_eq!(
        refusal(tracer(tmp.path(), other).append(b"x")),
        Refusal::Owner {
            found: me,
            expected: other
        }
    );
    if me == 0 {
        // As root, a directory really owned by nobody.
        let dir = tmp.path().join("nobody");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        assert_eq!(
            refusal(tracer(&dir, 0).append(b"x")),
            Refusal::Owner {
                found: 65534,
                expected: 0
            }
        );
    }
}

#[test]
fn path_that_is_not_a_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"keep").unwrap();
    assert_eq!(
        refusal(tracer(&file, euid()).append(b"x")),
        Refusal::NotDirectory
    );
    assert_eq!(fs::read(&file).unwrap(), b"keep");
}

#[test]
fn symlinked_log_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"keep").unwrap();
    let dir = tmp.path().join("log");
    fs::create_dir(&dir).unwrap();
    symlink(&victim, dir.join("bridge")).unwrap();
    assert_eq!(refusal(tracer(&dir, euid()).append(b"x")), Refusal::Symlink);
    assert_eq!(fs::read(&victim).unwrap(), b"keep");

    // Nor is a dangling link followed to create its target.
    fs::remove_file(dir.join("bridge")).unwrap();
    symlink(tmp.path().join("created"), dir.join("bridge")).unwrap();
    assert_eq!(refusal(tracer(&dir, euid()).append(b"x")), Refusal::Symlink);
    assert!(!tmp.path().join("created").exists());
}

#[test]
fn writable_or_foreign_log_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bridge");
    fs::write(&path, b"keep").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        refusal(tracer(tmp.path(), euid()).append(b"x")),
        Refusal::Writable { mode: 0o666 }
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    if euid() == 0 {
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert_eq!(
            refusal(tracer(tmp.path(), 0).append(b"x")),
            Refusal::Owner {
                found: 65534,
                expected: 0
            }
        );
    }
    assert_eq!(fs::read(&path).unwrap(), b"keep");
}

#[test]
fn hard_linked_or_special_log_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fs::create_dir(&dir).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::write(&elsewhere, b"keep").unwrap();
    fs::hard_link(&elsewhere, dir.join("bridge")).unwrap();
    assert_eq!(
        refusal(tracer(&dir, euid()).append(b"x")),
        Refusal::HardLinks { links: 2 }
    );
    assert_eq!(fs::read(&elsewhere).unwrap(), b"keep");

    fs::remove_file(dir.join("bridge")).unwrap();
    nix::unistd::mkfifo(&dir.join("bridge"), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    // No reader: the open must fail rather than block.
    assert!(matches!(
        tracer(&dir, euid()).append(b"x"),
        Err(TraceError::OpenFile { .. })
    ));

    fs::remove_file(dir.join("bridge")).unwrap();
    fs::create_dir(dir.join("bridge")).unwrap();
    assert!(tracer(&dir, euid()).append(b"x").is_err());
}

#[test]
fn parallel_appends_never_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let records: Vec<Vec<u8>> = (0..20)
        .map(|i| {
            let body = format!("{i:02}").repeat(20_000);
            tracer(&dir, euid()).record(&[], body.as_bytes(), b"", at(EXAMPLE_SECOND))
        })
        .collect();
    std::thread::scope(|scope| {
        for record in &records {
            let tracer = tracer(&dir, euid());
            scope.spawn(move || tracer.append(record).unwrap());
        }
    });
    let written = fs::read(dir.join("bridge")).unwrap();
    assert_eq!(written.len(), records.iter().map(Vec::len).sum::<usize>());
    let mut rest = written.as_slice();
    let mut seen = 0;
    while !rest.is_empty() {
        let record = records
            .iter()
            .find(|r| rest.starts_with(r))
            .unwrap_or_else(|| panic!("interleaved at byte {}", written.len() - rest.len()));
        rest = &rest[record.len()..];
        seen += 1;
    }
    assert_eq!(seen, 20);
}

#[test]
fn call_trace_records_once_with_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let env = vars(&[("CNI_COMMAND", "ADD"), ("CNI_TRACE", "1")]);
    let call = CallTrace::new(tracer(tmp.path(), euid()), env);
    call.set_input(b"{}");
    call.set_input(b"ignored");
    let end = at(EXAMPLE_SECOND + 1);
    let path = call.finish_at(b"result", end).unwrap().unwrap();
    assert!(call.finish_at(b"again", end).unwrap().is_none());
    call.finish(b"and again");
    let text = fs::read_to_string(path).unwrap();
    let expected = format!(
        "Fri Aug 27 11:55:52 UTC 2021\n{RULE}\nCNI params:\nCNI_COMMAND=ADD\nCNI_TRACE=1\n\
         env:\nCNI_COMMAND=ADD\nCNI_TRACE=1\nINPUT:\n{{}}\nOUTPUT:\nresult\n\
         Returned at: Fri Aug 27 11:55:53 UTC 2021\n{RULE}\n\n\n"
    );
    assert_eq!(text, expected);
}

#[test]
fn call_trace_without_stdin_records_empty_input() {
    let tmp = tempfile::tempdir().unwrap();
    let call = CallTrace::new(tracer(tmp.path(), euid()), Vec::new());
    let path = call.finish_at(b"v", at(EXAMPLE_SECOND)).unwrap().unwrap();
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains("\nINPUT:\n\nOUTPUT:\nv\n"), "{text}");
}

#[test]
fn a_failing_trace_is_only_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let call = CallTrace::new(tracer(&file, euid()), Vec::new());
    call.finish(b"out"); // Must not panic.
    assert!(matches!(call.finish_at(b"out", at(0)), Ok(None)));
}

#[test]
fn unwinding_panic_is_recorded_then_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let call = CallTrace::new(tracer(tmp.path(), euid()), vars(&[("CNI_COMMAND", "DEL")]));
    call.set_input(b"stdin");
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        record_unwinding_panic(Some(&call), || -> u8 { panic!("boom") })
    }));
    assert_eq!(
        caught.unwrap_err().downcast_ref::<&str>().copied(),
        Some("boom")
    );
    let text = fs::read_to_string(tmp.path().join("bridge")).unwrap();
    assert!(
        text.contains("\nINPUT:\nstdin\nOUTPUT:\n\nReturned at: "),
        "{text}"
    );

    assert_eq!(record_unwinding_panic(Some(&call), || 7), 7);
    assert_eq!(record_unwinding_panic(None, || 8), 8);
}
