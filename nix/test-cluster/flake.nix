{
  description = "ChainFire operator lanes: nix run ./nix/test-cluster#cluster -- <command>";

  inputs.chainfire.url = "path:../..";
  inputs.nixpkgs.follows = "chainfire/nixpkgs";

  outputs = { self, chainfire, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (system: pkgs: {
        # The same lanes the test suite runs (tests/chainfire_harness, started by ./cluster next
        # to this file), with the binaries of the flake-built ChainFire package; evidence goes to
        # ./work of the caller.
        cluster = pkgs.writeShellApplication {
          name = "cluster";
          runtimeInputs = [ pkgs.etcd (pkgs.python3.withPackages (p: [ p.etcd3 ])) ];
          text = ''
            export CHAINFIRE_BIN_DIR=${chainfire.packages.${system}.chainfire}/bin
            export CHAINFIRE_WORK_DIR="''${CHAINFIRE_WORK_DIR:-$PWD/work}"
            export PYTHONPATH=${chainfire}/tests
            exec python3 -m chainfire_harness.lanes "$@"
          '';
        };
        default = self.packages.${system}.cluster;
      });

      apps = forAllSystems (system: pkgs: {
        cluster = {
          type = "app";
          program = "${self.packages.${system}.cluster}/bin/cluster";
        };
        default = self.apps.${system}.cluster;
      });
    };
}
