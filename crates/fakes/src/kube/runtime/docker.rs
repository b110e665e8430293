//! The Docker plumbing under the fake's kubelet: containers, networks and volumes by label,
//! orphan reaping, pulls, container bodies, DNS aliases. Pod lifecycle (what runs when, and
//! the status read back) stays in `runtime`.

use super::*;

impl Runtime {
    /// Removes what fakes that are gone left behind (a fake killed before it could clean up):
    /// an instance `fk<port>` whose port on loopback no longer answers.
    pub(super) async fn reap_orphans(&self) {
        let filter = HashMap::from([("label", vec![INSTANCE.to_owned()])]);
        let mut instances = BTreeSet::new();
        if let Ok(list) = self.containers_labelled(&filter).await {
            instances.extend(
                list.into_iter()
                    .filter_map(|c| c.labels?.get(INSTANCE).cloned()),
            );
        }
        if let Ok(nets) = self.networks_labelled(&filter).await {
            instances.extend(
                nets.into_iter()
                    .filter_map(|n| n.labels?.get(INSTANCE).cloned()),
            );
        }
        for instance in instances {
            let Some(port) = instance
                .strip_prefix("fk")
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            let alive = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            .is_ok_and(|c| c.is_ok());
            if !alive && instance != self.prefix {
                self.remove_instance(&instance).await;
            }
        }
    }

    /// Every container and network labelled with `instance` (by id: Docker allows two
    /// networks of one name).
    pub(super) async fn remove_instance(&self, instance: &str) {
        let filter = HashMap::from([("label", vec![format!("{INSTANCE}={instance}")])]);
        if let Ok(list) = self.containers_labelled(&filter).await {
            for c in list {
                if let Some(id) = c.id {
                    self.remove_container(&id).await;
                }
            }
        }
        if let Ok(nets) = self.networks_labelled(&filter).await {
            for n in nets {
                if let Some(id) = n.id {
                    let _ = self.docker.remove_network(&id).await;
                }
            }
        }
        if let Ok(list) = self
            .docker
            .list_volumes(Some(
                bollard::query_parameters::ListVolumesOptionsBuilder::default()
                    .filters(&filter)
                    .build(),
            ))
            .await
        {
            for v in list.volumes.unwrap_or_default() {
                let _ = self
                    .docker
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        }
    }

    pub(super) async fn containers_labelled(
        &self,
        filter: &HashMap<&str, Vec<String>>,
    ) -> Result<Vec<bollard::models::ContainerSummary>, bollard::errors::Error> {
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(filter)
                    .build(),
            ))
            .await
    }

    pub(super) async fn networks_labelled(
        &self,
        filter: &HashMap<&str, Vec<String>>,
    ) -> Result<Vec<bollard::models::Network>, bollard::errors::Error> {
        self.docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(filter)
                    .build(),
            ))
            .await
    }

    pub(super) async fn remove_container(&self, id: &str) {
        let _ = self
            .docker
            .remove_container(
                id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
    }

    pub(super) async fn remove_volumes(&self, run: &PodRun) {
        for v in &run.volumes {
            let _ = self
                .docker
                .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
    }

    pub(super) async fn realias(
        &self,
        namespace: &str,
        container: &str,
        aliases: &BTreeSet<String>,
    ) {
        let net = self.network(namespace);
        let _ = self
            .docker
            .disconnect_network(
                &net,
                NetworkDisconnectRequest {
                    container: container.to_owned(),
                    force: Some(true),
                },
            )
            .await;
        let _ = self
            .docker
            .connect_network(
                &net,
                NetworkConnectRequest {
                    container: container.to_owned(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(aliases.iter().cloned().collect()),
                        ..Default::default()
                    }),
                },
            )
            .await;
    }

    /// Pulls `image` unless the daemon has it (imagePullPolicy IfNotPresent).
    pub(super) async fn pull(&self, image: &str) -> Result<(), (String, String)> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let mut stream = Box::pin(
            self.docker.create_image(
                Some(
                    CreateImageOptionsBuilder::default()
                        .from_image(image)
                        .build(),
                ),
                None,
                None,
            ),
        );
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err((
                    "ImagePullBackOff".to_owned(),
                    format!("Back-off pulling image \"{image}\": {}", one_line(&e)),
                ));
            }
        }
        if self.docker.inspect_image(image).await.is_err() {
            return Err((
                "ImagePullBackOff".to_owned(),
                format!("Back-off pulling image \"{image}\": not found after the pull"),
            ));
        }
        self.pulled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(image.to_owned());
        Ok(())
    }

    pub(super) fn container_body(
        &self,
        world: &Shared,
        pod: &Value,
        c: &Value,
        volumes: &HashMap<String, String>,
        labels: &HashMap<String, String>,
    ) -> Result<ContainerCreateBody, (String, String)> {
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("").to_owned())
                    .collect()
            })
        };
        let mut env = Vec::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or("");
            let value = match (&e["value"], &e["valueFrom"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::Null) => String::new(),
                (_, from) => resolve(world, pod, from).map_err(|m| {
                    (
                        "CreateContainerConfigError".to_owned(),
                        format!("env {name}: {m}"),
                    )
                })?,
            };
            env.push(format!("{name}={value}"));
        }
        let mut binds = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or("");
            let Some(volume) = volumes.get(name) else {
                return Err((
                    "CreateContainerConfigError".to_owned(),
                    format!("volumeMounts: no volume named \"{name}\" in the pod"),
                ));
            };
            let ro = if m["readOnly"] == true { ":ro" } else { "" };
            binds.push(format!(
                "{volume}:{}{ro}",
                m["mountPath"].as_str().unwrap_or("/")
            ));
        }
        Ok(ContainerCreateBody {
            image: c["image"].as_str().map(str::to_owned),
            entrypoint: strings(&c["command"]),
            cmd: strings(&c["args"]),
            env: Some(env),
            working_dir: c["workingDir"].as_str().map(str::to_owned),
            labels: Some(labels.clone()),
            host_config: Some(HostConfig {
                binds: Some(binds),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub(super) async fn create(
        &self,
        ns: &str,
        pod: &str,
        c: &Value,
        body: ContainerCreateBody,
    ) -> Result<String, (String, String)> {
        let name = format!(
            "{}-{ns}-{pod}-{}",
            self.prefix,
            c["name"].as_str().unwrap_or("")
        );
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map(|r| r.id)
            .map_err(|e| ("CreateContainerError".to_owned(), one_line(&e)))
    }

    pub(super) async fn run_to_end(&self, id: &str) -> Option<i64> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .ok()?;
        let mut wait = Box::pin(
            self.docker
                .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>),
        );
        match wait.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
            _ => None,
        }
    }
}
