//! `.gitlab-ci.yml`: a job's `secrets:` normalised as GitLab's server does.
