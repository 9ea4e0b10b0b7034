use super::*;

fn cpu(p: Option<f64>) -> [(Resource, Option<f64>); 1] {
    [(Resource::Cpu, p)]
}

fn step(s: &mut Saturation, p: Option<f64>) -> Vec<SaturationEvent> {
    s.step(&cpu(p), "pi", &mut |_| "driver-a 80%, driver-b 12%".into())
}

#[test]
fn two_snapshots_raise_and_two_clear_ones_resolve() {
    let mut s = Saturation::new(95.0);
    // Left open by an earlier process: resolved at the first clear reading, once.
    assert_eq!(
        step(&mut s, Some(10.0)),
        vec![SaturationEvent::Resolve {
            resource: Resource::Cpu
        }]
    );
    assert_eq!(step(&mut s, Some(10.0)), vec![]);
    // One saturated snapshot is a spike.
    assert_eq!(step(&mut s, Some(97.0)), vec![]);
    assert_eq!(step(&mut s, Some(50.0)), vec![]);
    assert_eq!(step(&mut s, Some(97.0)), vec![]);
    // A missing reading breaks the streak.
    assert_eq!(step(&mut s, None), vec![]);
    assert_eq!(step(&mut s, Some(97.0)), vec![]);
    let raised = step(&mut s, Some(96.44));
    assert_eq!(
        raised,
        vec![SaturationEvent::Raise {
            resource: Resource::Cpu,
            title: "Edge CPU saturated".into(),
            description: "CPU usage on edge pi is 96% (threshold 95%). Top containers: driver-a 80%, driver-b 12%.".into(),
            metadata: json!({"resource": "cpu", "percent": 96.4, "threshold": 95.0}),
        }]
    );
    // Between threshold − 5 and the threshold it stays raised.
    assert_eq!(step(&mut s, Some(92.0)), vec![]);
    assert_eq!(step(&mut s, Some(92.0)), vec![]);
    assert_eq!(step(&mut s, Some(80.0)), vec![]);
    assert_eq!(
        step(&mut s, Some(80.0)),
        vec![SaturationEvent::Resolve {
            resource: Resource::Cpu
        }]
    );
}

#[test]
fn a_resource_saturated_from_the_start_is_raised_not_resolved() {
    let mut s = Saturation::new(95.0);
    let r = [(Resource::Disk, Some(99.0)), (Resource::Memory, Some(20.0))];
    let first = s.step(&r, "pi", &mut |_| String::new());
    assert_eq!(
        first,
        vec![SaturationEvent::Resolve {
            resource: Resource::Memory
        }]
    );
    let second = s.step(&r, "pi", &mut |_| String::new());
    assert!(
        matches!(
            &second[..],
            [SaturationEvent::Raise { resource: Resource::Disk, title, description, .. }]
                if title == "Edge disk saturated" && description == "Disk usage on edge pi is 99% (threshold 95%)."
        ),
        "{second:?}"
    );
}

#[test]
fn threshold_and_words() {
    assert_eq!(threshold(None).0, 95.0);
    assert_eq!(threshold(Some(" 90 ")), (90.0, None));
    assert_eq!(threshold(Some("100")).0, 100.0);
    for bad in ["5", "0", "101", "nan", "inf", "x"] {
        let (v, warning) = threshold(Some(bad));
        assert_eq!(v, 95.0, "{bad}");
        assert!(warning.is_some(), "{bad}");
    }
    assert_eq!(
        words(Resource::Memory, "jetson", 92.5, 90.0, "").0,
        "Edge memory saturated"
    );
    assert_eq!(
        words(Resource::Memory, "jetson", 92.5, 90.0, "").1,
        "Memory usage on edge jetson is 92% (threshold 90%)."
    );
}

#[test]
fn top_containers_are_the_three_busiest() {
    let usage = |name: &str, cpu: f64, mem: f64| crate::engine::Usage {
        name: name.into(),
        cpu_percent: cpu,
        memory_percent: mem,
    };
    let stats = [
        usage("a", 1.5, 3.0),
        usage("b", 80.2, 1.0),
        usage("bad line", f64::NAN, f64::NAN),
        usage("c", 12.0, 2.0),
        usage("d", 0.1, 50.0),
    ];
    assert_eq!(top_of(&stats, Resource::Cpu), "b 80%, c 12%, a 2%");
    assert_eq!(top_of(&stats, Resource::Memory), "d 50%, a 3%, c 2%");
    assert_eq!(top_of(&[], Resource::Cpu), "");
}
