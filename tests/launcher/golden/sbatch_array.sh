#!/bin/bash

# Parameters
#SBATCH --account=mylab
#SBATCH --array=0-5%4
#SBATCH --constraint=a100
#SBATCH --cpus-per-task=8
#SBATCH --error=/shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%A_%a/%A_%a_0_log.err
#SBATCH --gpus-per-node=4
#SBATCH --job-name=method-seed
#SBATCH --mail-type=END
#SBATCH --mem=64GB
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --open-mode=append
#SBATCH --output=/shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%A_%a/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --qos=normal
#SBATCH --signal=USR2@180
#SBATCH --time=1440
#SBATCH --wckey=submitit

# setup
module load cuda/12.1
source ~/venvs/sslequi/bin/activate

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%A_%a/%A_%a_%t_log.out --error /shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%A_%a/%A_%a_%t_log.err python -u -m submitit.core._submit /shared/runs/sie_3diebench/method-seed-20260101-000000-abcdef/.submitit/%j
