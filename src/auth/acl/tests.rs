//! The ACL file as mosquitto reads and judges it: each case here is what
//! `security_default.c` decides for the same file and client.

use super::*;

const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite home/#
topic deny home/secret/#
topic write logs/alice

user bob
topic home/bob
pattern read devices/%c/#
pattern write users/%u/#
";

fn acl(text: &str) -> AclFile {
    AclFile::parse(text).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).unwrap()
}

fn reads(client: &ClientAcl, t: &str) -> bool {
    client.allows(&topic(t), Access::Read)
}

fn writes(client: &ClientAcl, t: &str) -> bool {
    client.allows(&topic(t), Access::Write)
}

#[test]
fn each_user_gets_their_own_rules_and_anonymous_clients_the_first_ones() {
    let file = acl(FILE);
    let anonymous = file.for_client(None, "anon");
    assert!(reads(&anonymous, "public/news"));
    assert!(!writes(&anonymous, "public/news"), "read only");
    assert!(!reads(&anonymous, "home/x"));
    let alice = file.for_client(Some("alice"), "a1");
    assert!(reads(&alice, "home/kitchen") && writes(&alice, "home/kitchen"));
    assert!(
        !reads(&alice, "public/news"),
        "the anonymous rules are not hers"
    );
    assert!(writes(&alice, "logs/alice") && !reads(&alice, "logs/alice"));
    let bob = file.for_client(Some("bob"), "b1");
    assert!(
        reads(&bob, "home/bob") && writes(&bob, "home/bob"),
        "readwrite"
    );
    assert!(!reads(&bob, "home/kitchen"));
    let stranger = file.for_client(Some("carol"), "c1");
    assert!(!reads(&stranger, "public/news") && !reads(&stranger, "home/bob"));
}

#[test]
fn a_deny_wins_over_any_grant_of_its_list_wherever_it_is_written() {
    let file = acl(FILE);
    let alice = file.for_client(Some("alice"), "a1");
    assert!(!reads(&alice, "home/secret/diary"));
    assert!(!writes(&alice, "home/secret"));
    assert!(reads(&alice, "home/secretary"));
    let later = acl("topic deny a/b\ntopic read a/#\n");
    assert_eq!(later, acl("topic read a/#\ntopic deny a/b\n"));
    assert!(!reads(&later.for_client(None, "c"), "a/b"));
}

#[test]
fn patterns_apply_to_every_client_with_its_own_names() {
    let file = acl(FILE);
    let alice = file.for_client(Some("alice"), "a1");
    assert!(reads(&alice, "devices/a1/temp"));
    assert!(!reads(&alice, "devices/b1/temp"));
    assert!(writes(&alice, "users/alice/status"));
    assert!(!writes(&alice, "users/bob/status"));
    let anonymous = file.for_client(None, "anon");
    assert!(
        reads(&anonymous, "devices/anon/x"),
        "%c applies without a user"
    );
    assert!(!writes(&anonymous, "users/anon/x"), "%u does not");
    let odd = acl("pattern a/%x/%c%u/%\n").for_client(Some("u"), "c");
    assert!(reads(&odd, "a/%x/cu/%"), "only %c and %u are replaced");
}

#[test]
fn a_name_with_a_wildcard_is_denied_what_patterns_judge_not_its_own_rules() {
    let file = acl(FILE);
    for (user, client_id) in [(Some("alice"), "+"), (Some("ali#"), "a1"), (None, "#")] {
        let client = file.for_client(user, client_id);
        assert!(!reads(&client, "devices/x/y"), "{user:?} {client_id}");
        assert!(
            !client.may_subscribe(&filter("devices/#")),
            "{user:?} {client_id}"
        );
    }
    let alice = file.for_client(Some("alice"), "+");
    assert!(reads(&alice, "home/kitchen"), "her own rules come first");
    let none = acl("topic read a\n").for_client(None, "+");
    assert!(
        reads(&none, "a"),
        "without patterns the name does not matter"
    );
}

#[test]
fn a_users_grant_comes_before_a_pattern_deny_as_in_mosquitto() {
    let file = acl("user u\ntopic read a/#\npattern deny a/%u\n");
    let client = file.for_client(Some("u"), "c");
    assert!(reads(&client, "a/u"));
    let other = file.for_client(Some("v"), "c");
    assert!(!reads(&other, "a/v") && !reads(&other, "a/w"));
}

#[test]
fn nothing_is_granted_that_no_rule_grants() {
    let empty = acl("# nothing\n\n");
    let client = empty.for_client(Some("u"), "c");
    assert!(!reads(&client, "a") && !writes(&client, "a"));
    assert!(!client.may_subscribe(&filter("#")));
}

#[test]
fn sys_topics_need_a_rule_of_their_own() {
    let file = acl("topic read #\ntopic read $SYS/broker/#\n");
    let client = file.for_client(None, "c");
    assert!(reads(&client, "a/b"));
    assert!(reads(&client, "$SYS/broker/uptime"));
    assert!(!reads(&client, "$SYS/other"), "# does not reach $ topics");
    assert!(client.may_subscribe(&filter("$SYS/#")));
    assert!(!client.may_subscribe(&filter("$SYS/x/#")));
}

#[test]
fn a_filter_is_refused_only_where_it_could_receive_nothing() {
    let file = acl("topic read sensors/#\ntopic deny sensors/private/#\ntopic write cmd/#\n");
    let client = file.for_client(None, "c");
    let may = |f: &str| client.may_subscribe(&filter(f));
    assert!(may("sensors/+/temp"));
    assert!(may("#"), "some of what # matches may be read");
    assert!(
        may("+/private/x"),
        "sensors/private/x is denied but not all of it"
    );
    assert!(!may("cmd/#"), "write only");
    assert!(!may("other"));
    assert!(!may("sensors/private/#"), "a deny covers it all");
    assert!(!may("sensors/private/+/x"));
}

#[test]
fn rules_read_as_mosquitto_reads_them() {
    let file = acl("user  my user \r\ntopic read a b/c\ntopic a\ntopic  read  \n");
    let client = file.for_client(Some("my user"), "c");
    assert!(reads(&client, "a b/c") && !writes(&client, "a b/c"));
    assert!(
        writes(&client, "a") && reads(&client, "a"),
        "no word: readwrite"
    );
    assert!(writes(&client, "read"), "a lone word is the topic");
    assert!(
        AclFile::parse("topic a b/c\n").is_err(),
        "two words: an access and a topic"
    );
    let twice = acl("user u\ntopic read a\nuser v\ntopic read b\nuser u\ntopic read c\n");
    let u = twice.for_client(Some("u"), "c");
    assert!(reads(&u, "a") && reads(&u, "c") && !reads(&u, "b"));
}

#[test]
fn a_bad_line_is_named() {
    let cases = [
        (
            "topic read a\ntopic reed a/b\n",
            2,
            "\"reed\" is not read, write, readwrite or deny",
        ),
        ("\n# c\nuser\n", 3, "user with no name"),
        ("topic\n", 1, "a rule with no topic"),
        (
            "pattern read a/#/b\n",
            1,
            "\"a/#/b\": '#' is not alone in the last level of the filter",
        ),
        (
            "user u\ntopics read a\n",
            2,
            "\"topics\" is not user, topic or pattern",
        ),
    ];
    for (text, line, message) in cases {
        assert_eq!(
            AclFile::parse(text),
            Err((line, message.to_owned())),
            "{text:?}"
        );
    }
}

#[test]
fn a_file_names_itself_in_its_errors() {
    let path = std::env::temp_dir().join(format!("tern-acl-unit-{}", std::process::id()));
    std::fs::write(&path, "topic read a\nbogus\n").unwrap();
    let err = AclFile::load(&path).unwrap_err();
    assert_eq!(
        err,
        format!(
            "acl file {} line 2: \"bogus\" is not user, topic or pattern",
            path.display()
        )
    );
    std::fs::remove_file(&path).unwrap();
    assert!(AclFile::load(&path)
        .unwrap_err()
        .starts_with("cannot read acl file"));
}
