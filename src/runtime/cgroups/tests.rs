use super::*;

#[test]
fn hierarchies_are_the_enabled_controllers_grouped_as_mounted() {
    let proc_cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
        cpuset\t3\t1\t1\ncpu\t2\t20\t1\ncpuacct\t2\t38\t1\nmemory\t4\t145\t1\n\
        net_cls\t0\t1\t1\npids\t8\t54\t0\n";
    assert_eq!(
        v1_hierarchies(proc_cgroups),
        vec!["cpu,cpuacct", "cpuset", "memory"]
    );
    // cgroup v2 only: every hierarchy id is 0.
    assert!(v1_hierarchies("memory\t0\t10\t1\ncpu\t0\t10\t1\n").is_empty());
    assert!(v1_hierarchies("garbage\nmemory x 1 1\n").is_empty());
}
