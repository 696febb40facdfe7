{
  description = "ChainFire: a fixed-membership control-plane store serving the etcd v3 gRPC API";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        # The daemon and chainfire-backup, built by the repository's CMake (no tests here: the
        # test suite needs etcdctl and real processes; run it with `nix develop -c scripts/test.sh`).
        chainfire = pkgs.stdenv.mkDerivation {
          pname = "chainfire";
          version = "0.1.0";
          src = ./.;
          nativeBuildInputs = [ pkgs.cmake pkgs.ninja pkgs.pkg-config pkgs.protobuf ];
          buildInputs = [
            pkgs.grpc
            pkgs.protobuf
            pkgs.rocksdb
            pkgs.abseil-cpp
            pkgs.spdlog
            pkgs.gtest
            pkgs.cli11
            pkgs.nlohmann_json
            pkgs.openssl
          ];
          cmakeFlags = [ "-DCMAKE_BUILD_TYPE=RelWithDebInfo" ];
          doCheck = false;
        };
        default = chainfire;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.system}.chainfire ];
          packages = [
            pkgs.ccache
            pkgs.etcd
            (pkgs.python3.withPackages (p: [ p.pytest p.etcd3 ]))
          ];
        };
      });

      checks = forAllSystems (pkgs: {
        chainfire = self.packages.${pkgs.system}.chainfire;
      });
    };
}
