"""Teachers: a student's teacher found and loaded (loading), torchvision's pretrained ones
(torchvision_zoo), published checkpoints imported as finished runs (importing) and downloaded
(download), and the command `python -m utils.teachers import|fetch` (cli, __main__).

May import: the method modules of utils/, utils.process, utils.data, utils.runs, utils.training.
"""
