//! Compiling scenarios: every rule names its field; weighted scenarios
//! split users, rates and iterations exactly; names are qualified; user
//! variables reach later requests.

use std::{path::Path, time::Duration};

use crate::{
    compile::{Compiled, Slot, compile_with_env, largest_remainder, max_names, plan_length},
    error::Result,
    plan::{Executor, Plan},
    wait::Wait,
};

const TARGET: &str = "target: {baseUrl: 'http://127.0.0.1:1'}\n";

fn compile_at(yaml: &str, slot: Slot) -> Result<Compiled> {
    let plan: Plan = serde_yaml_ng::from_str(&format!("{TARGET}{yaml}")).unwrap();
    compile_with_env(&plan, slot, Path::new("."), "spec.", &|_| None)
}

fn compile(yaml: &str) -> Compiled {
    compile_at(yaml, Slot::SOLO).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of `yaml`, which must name `field`.
fn err(yaml: &str, field: &str) -> String {
    let e = compile_at(yaml, Slot::SOLO)
        .err()
        .unwrap_or_else(|| panic!("accepted: {yaml}"))
        .to_string();
    assert!(e.starts_with(&format!("spec.{field}: ")), "{field}: {e}");
    e
}

const TWO: &str = "scenarios:
  browse:
    load: {users: 4, duration: 10s, thinkTime: 1s..2s}
    requests: [{name: home, path: /}, {name: buy, steps: [{name: cart, path: /c}, {name: pay, path: /p}]}]
  spike:
    startTime: 5s
    load: {executor: arrival-rate, rate: 50, duration: 3s}
    requests: [{name: home, path: /}]
";

#[test]
fn named_scenarios_qualify_their_names_and_keep_their_own_load() {
    let c = compile(TWO);
    assert_eq!(c.scenario_names, ["browse", "spike"]);
    assert_eq!(
        c.names,
        [
            "browse/home",
            "browse/buy/cart",
            "browse/buy/pay",
            "spike/home"
        ]
    );
    assert_eq!(c.metric_scenario, [Some(0), Some(0), Some(0), Some(1)]);
    assert_eq!(c.journeys, ["browse/buy"]);
    assert_eq!(c.journey_scenario, [Some(0)]);
    let (b, s) = (&c.scenarios[0], &c.scenarios[1]);
    assert_eq!(b.name.as_deref(), Some("browse"));
    assert_eq!(b.load.executor, Executor::Concurrency);
    assert_eq!(
        b.load.think_time,
        Wait::Uniform(Duration::from_secs(1), Duration::from_secs(2))
    );
    assert_eq!(s.load.executor, Executor::ArrivalRate);
    assert_eq!(s.start_time, Duration::from_secs(5));
    // The test lasts until its latest scenario ends.
    assert_eq!(c.length(), Some(Duration::from_secs(10)));
}

#[test]
fn a_plain_plan_is_one_unnamed_scenario_with_unqualified_names() {
    let c = compile(
        "load: {users: 2, duration: 1s}\nrequests: [{name: a, path: /}, {name: j, steps: [{name: s, path: /}]}]\n",
    );
    assert!(c.scenario_names.is_empty());
    assert_eq!(c.scenarios.len(), 1);
    assert_eq!(c.scenarios[0].name, None);
    assert_eq!(c.names, ["a", "j/s"]);
    assert_eq!(c.metric_scenario, [None, None]);
    assert_eq!(c.journeys, ["j"]);
}

#[test]
fn on_start_and_on_stop_are_journeys_whose_vars_are_the_users() {
    let c = compile(
        "scenarios:
  shop:
    load: {users: 2, duration: 1s}
    onStart:
      vars: {email: '{{ email }}'}
      steps: [{name: login, method: POST, path: /login, capture: {token: {json: /token}}}]
    onStop: {steps: [{name: logout, path: '/logout?t={{ user.token }}'}]}
    requests: [{name: me, path: /me, headers: {authorization: 'Bearer {{ user.token }}', x-email: '{{ user.email }}'}}]
",
    );
    assert_eq!(
        c.names,
        ["shop/onStart/login", "shop/me", "shop/onStop/logout"]
    );
    assert_eq!(c.journeys, ["shop/onStart", "shop/onStop"]);
    let s = &c.scenarios[0];
    assert_eq!(s.user_vars, ["email", "token"]);
    assert_eq!(s.on_start.as_ref().unwrap().journey, Some(0));
    assert_eq!(s.on_stop.as_ref().unwrap().journey, Some(1));

    // Unqualified in the unnamed scenario.
    let c = compile(
        "load: {users: 1, duration: 1s}\nonStart: {steps: [{name: login, path: /l}]}\nrequests: [{name: a, path: /}]\n",
    );
    assert_eq!(c.names, ["onStart/login", "a"]);
    assert_eq!(c.journeys, ["onStart"]);

    // A user variable that onStart does not make is an error naming the known ones.
    let e = err(
        "load: {users: 1, duration: 1s}\nonStart: {vars: {a: x}, steps: [{name: l, path: /}]}\nrequests: [{name: r, path: '/{{ user.b }}'}]\n",
        "requests[0].path",
    );
    assert!(e.contains("user.b") || e.contains("\"b\""), "{e}");
    // onStart itself cannot read the user's variables: it makes them.
    err(
        "load: {users: 1, duration: 1s}\nonStart: {steps: [{name: l, path: '/{{ user.t }}', capture: {t: {json: /t}}}]}\nrequests: [{name: r, path: /}]\n",
        "onStart.steps[0].path",
    );
    // A request may not take the journey's name.
    err(
        "load: {users: 1, duration: 1s}\nonStart: {steps: [{name: l, path: /}]}\nrequests: [{name: onStart, path: /}]\n",
        "requests[0].name",
    );
    err(
        "load: {users: 1, duration: 1s}\nonStart: {steps: []}\nrequests: [{name: r, path: /}]\n",
        "onStart.steps",
    );
}

#[test]
fn per_request_think_time_overrides_the_scenarios() {
    let c = compile(
        "load: {users: 1, duration: 1s, thinkTime: 1s}\nrequests: [{name: a, path: /, thinkTime: exponential(200ms)}, {name: b, path: /}]\n",
    );
    let e = &c.scenarios[0].entries;
    assert_eq!(
        e[0].think_time,
        Some(Wait::Exponential(Duration::from_millis(200)))
    );
    assert_eq!(e[1].think_time, None);
    err(
        "load: {users: 1, duration: 1s}\nrequests: [{name: a, path: /, thinkTime: 2h}]\n",
        "requests[0].thinkTime",
    );
}

#[test]
fn every_scenario_rule_names_its_field() {
    let s = "scenarios: {a: {load: {users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n";
    // Both forms at once.
    err(
        &format!("requests: [{{name: r, path: /}}]\n{s}"),
        "requests",
    );
    err(
        &format!("onStart: {{steps: [{{name: l, path: /}}]}}\n{s}"),
        "onStart",
    );
    // A top-level load that nothing shares.
    err(&format!("load: {{users: 3, duration: 1s}}\n{s}"), "load");
    // A scenario without a load or requests.
    err(
        "scenarios: {a: {requests: [{name: r, path: /}]}}\n",
        "scenarios.a.load",
    );
    err(
        "scenarios: {a: {load: {users: 1, duration: 1s}}}\n",
        "scenarios.a.requests",
    );
    // Its own load is checked with its own field names.
    err(
        "scenarios: {a: {load: {users: 1}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.load",
    );
    err(
        "scenarios: {a: {load: {executor: arrival-rate, users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.load.users",
    );
    err(
        "scenarios: {a: {load: {users: 1, duration: 1s}, requests: [{name: r, path: '/{{ user.x }}'}]}}\n",
        "scenarios.a.requests[0].path",
    );
    // A bad scenario name.
    err(
        "scenarios: {'a b': {load: {users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a b",
    );
    // onStart and onStop need long-lived users.
    let e = err(
        "scenarios: {a: {load: {executor: arrival-rate, rate: 1, duration: 1s}, onStart: {steps: [{name: l, path: /}]}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.onStart",
    );
    assert!(e.contains("no long-lived virtual users"), "{e}");
    err(
        "load: {executor: arrival-rate, rate: 1, duration: 1s}\nonStop: {steps: [{name: l, path: /}]}\nrequests: [{name: r, path: /}]\n",
        "onStop",
    );
    // startTime and the scenario's length within the longest test.
    err(
        "scenarios: {a: {startTime: 168h, load: {users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.startTime",
    );
    // Records are the top-level data's.
    err(
        "scenarios: {a: {data: {file: x.csv}, load: {users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.data.file",
    );
    err(
        "scenarios: {a: {data: {select: unique}, load: {users: 1, duration: 1s}, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.data",
    );
    // Too many scenarios.
    let many: String = (0..=crate::limits::MAX_SCENARIOS)
        .map(|i| {
            format!(
                "  s{i}: {{load: {{users: 1, duration: 1s}}, requests: [{{name: r, path: /}}]}}\n"
            )
        })
        .collect();
    let e = err(&format!("scenarios:\n{many}"), "scenarios");
    assert!(e.contains("limit"), "{e}");
}

#[test]
fn weighted_scenarios_take_only_their_waits_from_their_own_load() {
    let w = |own: &str| {
        format!(
            "load: {{users: 10, duration: 1s}}\nscenarios:\n  a: {{weight: 1, {own}requests: [{{name: r, path: /}}]}}\n  b: {{weight: 2, requests: [{{name: r, path: /}}]}}\n"
        )
    };
    let c = compile(&w("load: {thinkTime: 1s..3s, pacing: 2s}, "));
    assert_eq!(
        c.scenarios[0].load.think_time,
        Wait::Uniform(Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(c.scenarios[1].load.think_time, Wait::ZERO);
    for field in [
        "users: 3",
        "duration: 2s",
        "iterations: 5",
        "gracefulStop: 1s",
    ] {
        let name = field.split(':').next().unwrap();
        err(
            &w(&format!("load: {{{field}}}, ")),
            &format!("scenarios.a.load.{name}"),
        );
    }
    err(
        &w("load: {executor: arrival-rate}, "),
        "scenarios.a.load.executor",
    );
    // A rate shared by weight: the scenario's own `load: {}` is fine.
    compile(
        "load: {executor: arrival-rate, rate: 10, duration: 1s}\nscenarios: {a: {weight: 1, load: {}, requests: [{name: r, path: /}]}}\n",
    );
    // Weights need a level to share.
    err(
        "load: {duration: 1s}\nscenarios: {a: {weight: 1, requests: [{name: r, path: /}]}}\n",
        "load",
    );
    err(
        "load: {users: 2, duration: 1s}\nscenarios: {a: {weight: -1, requests: [{name: r, path: /}]}}\n",
        "scenarios.a.weight",
    );
    err(
        "load: {users: 2, duration: 1s}\nscenarios: {a: {weight: 0, requests: [{name: r, path: /}]}}\n",
        "scenarios",
    );
    err(
        "load: {users: 2, duration: 1s, thinkTime: 1s}\nscenarios: {a: {weight: 1, requests: [{name: r, path: /}]}}\n",
        "load.thinkTime",
    );
    // A weight so small the scenario never gets a user.
    let e = err(
        "load: {users: 2, duration: 1s}\nscenarios:\n  a: {weight: 10, requests: [{name: r, path: /}]}\n  b: {weight: 0.5, requests: [{name: r, path: /}]}\n",
        "scenarios.b.weight",
    );
    assert!(e.contains("none of the 2 users"), "{e}");
    // Users of all scenarios together within the limit.
    let e = err(
        "scenarios:\n  a: {load: {users: 600000, duration: 1s}, requests: [{name: r, path: /}]}\n  b: {load: {users: 600000, duration: 1s}, requests: [{name: r, path: /}]}\n",
        "scenarios",
    );
    assert!(e.contains("limit"), "{e}");
    // Mixed: an unweighted scenario next to weighted ones keeps its own load.
    let c = compile(
        "load: {users: 2, duration: 1s}\nscenarios:\n  a: {weight: 1, requests: [{name: r, path: /}]}\n  b: {load: {executor: arrival-rate, rate: 5, duration: 2s}, requests: [{name: r, path: /}]}\n",
    );
    assert_eq!(c.scenarios[1].load.executor, Executor::ArrivalRate);
    assert_eq!(c.length(), Some(Duration::from_secs(2)));
}

#[test]
fn largest_remainder_parts_add_up_and_follow_the_weights() {
    assert_eq!(largest_remainder(10, &[1, 1, 1]), [4, 3, 3]);
    assert_eq!(largest_remainder(23, &[10, 1, 0]), [21, 2, 0]);
    assert_eq!(largest_remainder(0, &[1, 2]), [0, 0]);
    assert_eq!(largest_remainder(5, &[0, 0]), [0, 0]);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..5000 {
        let n = 1 + next(6) as usize;
        let weights: Vec<u64> = (0..n).map(|_| next(3_000_000)).collect();
        let total = next(100_000);
        let parts = largest_remainder(total, &weights);
        let sum: u64 = weights.iter().sum();
        if sum == 0 {
            continue;
        }
        assert_eq!(parts.iter().sum::<u64>(), total, "{total} {weights:?}");
        for (p, w) in parts.iter().zip(&weights) {
            // Each part is its exact share rounded down or up.
            let exact = total as f64 * *w as f64 / sum as f64;
            assert!(
                (*p as f64 - exact).abs() < 1.0 + 1e-9,
                "{p} vs {exact} ({total} {weights:?})"
            );
        }
    }
}

/// Weighted users: at every instant and on every runner the parts add up
/// to the shared level's rounded users, across many (users, weights,
/// runners) combinations; iterations likewise.
#[test]
fn weighted_users_and_iterations_split_exactly_over_runners() {
    let weight_sets: [&[&str]; 4] = [
        &["10", "1", "0.5"],
        &["1", "1", "1"],
        &["0.3", "0.7"],
        &["5", "0.05", "2", "1"],
    ];
    for weights in weight_sets {
        for users in [1u64, 2, 3, 7, 10, 23, 100, 997] {
            let scenarios: String = weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    format!("  s{i}: {{weight: {w}, requests: [{{name: r, path: /}}]}}\n")
                })
                .collect();
            let iterations = users * 13 + 5;
            let yaml = format!(
                "load: {{stages: [{{duration: 10s, target: {users}}}, {{duration: 10s, target: 0}}], iterations: {iterations}}}\nscenarios:\n{scenarios}"
            );
            // Too few users for every type: refused, naming the weight.
            let units: Vec<u64> = weights
                .iter()
                .map(|w| (w.parse::<f64>().unwrap() * 1e6) as u64)
                .collect();
            if largest_remainder(users, &units).contains(&0) {
                let e = compile_at(&yaml, Slot::SOLO).unwrap_err().to_string();
                assert!(e.contains(".weight: gives the scenario none"), "{e}");
                continue;
            }
            for count in [1u32, 2, 3, 5] {
                let runners: Vec<Compiled> = (0..count)
                    .map(|index| compile_at(&yaml, Slot { index, count }).unwrap())
                    .collect();
                let n = weights.len();
                // Iterations: each scenario's across runners, all together the plan's.
                let mut all = 0;
                for s in 0..n {
                    all += runners
                        .iter()
                        .map(|c| c.scenarios[s].load.iterations.unwrap())
                        .sum::<u64>();
                }
                assert_eq!(all, iterations, "{weights:?} {users} over {count}");
                for ms in (0..20_000).step_by(370) {
                    let t = Duration::from_millis(ms);
                    let level = runners[0].scenarios[0].load.profile.at(t).round() as u64;
                    let mut sum = 0;
                    for s in 0..n {
                        let total = runners[0].scenarios[s].load.users_at(t);
                        // Every runner derives the same part; their shares add up to it.
                        let shares: u64 = runners
                            .iter()
                            .map(|c| c.slot.share(c.scenarios[s].load.users_at(t)))
                            .sum();
                        assert_eq!(shares, total, "{weights:?} {users} over {count} at {t:?}");
                        sum += total;
                    }
                    assert_eq!(sum, level, "{weights:?} {users} over {count} at {t:?}");
                }
            }
        }
    }
}

#[test]
fn weighted_rates_split_in_proportion() {
    let c = compile(
        "load: {executor: arrival-rate, rate: 90, duration: 4s, iterations: 100, maxInFlight: 30}\nscenarios:\n  a: {weight: 2, requests: [{name: r, path: /}]}\n  b: {weight: 1, requests: [{name: r, path: /}]}\n",
    );
    let (a, b) = (&c.scenarios[0].load, &c.scenarios[1].load);
    assert_eq!((a.profile.start, b.profile.start), (60.0, 30.0));
    assert_eq!(a.iterations.unwrap() + b.iterations.unwrap(), 100);
    assert_eq!(a.iterations, Some(67));
    assert_eq!((a.max_in_flight, b.max_in_flight), (20, 10));
    assert_eq!(
        a.split, None,
        "arrivals split by rate, not by a users split"
    );
}

/// What the operator reads from the plan alone bounds what the runners do.
#[test]
fn names_and_length_from_the_plan_alone_bound_the_compiled_ones() {
    for yaml in [
        TWO,
        "load: {users: 2, duration: 1s}\nonStart: {steps: [{name: l, path: /}]}\nonStop: {steps: [{name: o, path: /}]}\nrequests: [{name: a, path: /}, {name: j, steps: [{name: s, path: /}]}]\n",
        "load: {users: 10, stages: [{duration: 3s, target: 5}]}\nscenarios:\n  a: {weight: 1, startTime: 2s, requests: [{name: r, path: /}]}\n  b: {load: {users: 1, duration: 4s}, requests: [{name: r, path: /}]}\n",
    ] {
        let yaml = yaml.replace("users: 10, stages", "stages");
        let c = compile(&yaml);
        let plan: Plan = serde_yaml_ng::from_str(&format!("{TARGET}{yaml}")).unwrap();
        assert!(
            max_names(&plan) >= c.names.len() + c.journeys.len(),
            "{yaml}"
        );
        assert_eq!(
            Some(plan_length(&plan, Duration::from_secs(10))),
            c.length(),
            "{yaml}"
        );
    }
}

/// onStop gets no record of its own (it would draw another than the one
/// its onStart used, and use one up with `unique` data): refused, naming
/// the field and the way round it; through the user it works.
#[test]
fn on_stop_takes_what_it_needs_from_a_record_through_the_user() {
    let with = |on_stop: &str| {
        let plan: Plan = serde_yaml_ng::from_str(&format!(
            "{TARGET}load: {{users: 1, duration: 1s}}\n\
             onStart: {{vars: {{id: '{{{{ record.id }}}}'}}, steps: [{{name: in, path: '/in/{{{{ record.id }}}}'}}]}}\n\
             onStop: {{steps: [{{name: out, path: '{on_stop}'}}]}}\n\
             requests: [{{name: r, path: /}}]\n"
        ))
        .unwrap();
        crate::compile::compile_with_fields(
            &plan,
            Slot::SOLO,
            "spec.",
            &|_| None,
            vec!["id".into()],
        )
    };
    let e = with("/out/{{ record.id }}").unwrap_err().to_string();
    assert!(
        e.starts_with("spec.onStop: ") && e.contains("user.id"),
        "{e}"
    );
    with("/out/{{ user.id }}").unwrap();
}
