! examples/embed.f90 — dfx's trainer inside a Fortran 2008 program that owns MPI, through the C
! API (train/dfx_c.h) and ISO_C_BINDING: MPI_COMM_WORLD goes in as the Fortran integer handle,
! a few steps are trained, and a field of the program's own is predicted and checked.
!
!   mpif90 embed.f90 $(pkg-config --libs dfx) -o embed_f    # libdfx brings the C++ runtime
!   mpiexec -n 3 ./embed_f [steps] [json]
module dfx
  use, intrinsic :: iso_c_binding
  implicit none
  integer(c_int), parameter :: DFX_OK = 0
  interface
    function dfx_last_error() bind(c, name="dfx_last_error")
      import :: c_ptr
      type(c_ptr) :: dfx_last_error
    end function
    integer(c_int) function dfx_trainer_create_f(json, fcomm, t) bind(c, name="dfx_trainer_create_f")
      import :: c_char, c_int, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: json
      integer(c_int), value :: fcomm
      type(c_ptr), intent(out) :: t
    end function
    integer(c_int) function dfx_trainer_train(t, steps) bind(c, name="dfx_trainer_train")
      import :: c_int, c_int64_t, c_ptr
      type(c_ptr), value :: t
      integer(c_int64_t), value :: steps
    end function
    integer(c_int) function dfx_trainer_step(t, step) bind(c, name="dfx_trainer_step")
      import :: c_int, c_int64_t, c_ptr
      type(c_ptr), value :: t
      integer(c_int64_t), intent(out) :: step
    end function
    integer(c_int) function dfx_trainer_last_loss(t, loss) bind(c, name="dfx_trainer_last_loss")
      import :: c_int, c_double, c_ptr
      type(c_ptr), value :: t
      real(c_double), intent(out) :: loss
    end function
    integer(c_int) function dfx_trainer_field_size(t, dims, res) bind(c, name="dfx_trainer_field_size")
      import :: c_int, c_int64_t, c_ptr
      type(c_ptr), value :: t
      integer(c_int), intent(out) :: dims
      integer(c_int64_t), intent(out) :: res
    end function
    integer(c_int) function dfx_trainer_predict(t, input, batch, output) bind(c, name="dfx_trainer_predict")
      import :: c_int, c_int64_t, c_double, c_ptr
      type(c_ptr), value :: t
      real(c_double), dimension(*), intent(in) :: input
      integer(c_int64_t), value :: batch
      real(c_double), dimension(*), intent(out) :: output
    end function
    subroutine dfx_trainer_free(t) bind(c, name="dfx_trainer_free")
      import :: c_ptr
      type(c_ptr), value :: t
    end subroutine
    integer(c_size_t) function c_strlen(s) bind(c, name="strlen")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
    end function
  end interface
contains
  ! dfx_last_error() as a Fortran string.
  function last_error() result(msg)
    character(len=:), allocatable :: msg
    type(c_ptr) :: p
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    p = dfx_last_error()
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: msg)
    do i = 1, n
      msg(i:i) = chars(i)
    end do
  end function
end module

program embed
  use, intrinsic :: iso_c_binding
  use mpi
  use dfx
  implicit none
  character(len=4096) :: config, arg
  type(c_ptr) :: t
  integer :: ierr, rank, k, x, y, b, steps
  integer(c_int) :: dims
  integer(c_int64_t) :: step, res
  integer(c_int64_t), parameter :: batch = 2
  real(c_double) :: loss, px, py
  real(c_double), allocatable :: nu(:, :, :), u(:, :, :)  ! (x, y, sample): C's [sample, 1, y, x]
  real(c_double), parameter :: pi = 3.14159265358979323846d0
  logical :: ok

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  steps = 5
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) steps
  end if
  config = '{"problem": "poisson2d", "res": 16, "depth": 2, "width": 4, "batch": 7, ' // &
           '"samples": 14, "steps": 5, "seed": 9, "dtype": "float64", "schedule": "cosine", ' // &
           '"optimizer": "adam", "eval_samples": 0}'
  if (command_argument_count() >= 2) call get_command_argument(2, config)

  if (dfx_trainer_create_f(trim(config) // c_null_char, int(MPI_COMM_WORLD, c_int), t) /= DFX_OK) &
    call fail("create")
  do k = 1, steps
    if (dfx_trainer_train(t, 1_c_int64_t) /= DFX_OK) call fail("train")
    if (dfx_trainer_step(t, step) /= DFX_OK) call fail("step")
    if (dfx_trainer_last_loss(t, loss) /= DFX_OK) call fail("last_loss")
    if (rank == 0) write (*, '(a, i0, a, es25.17e3)') 'step ', step, ' loss ', loss
  end do

  if (dfx_trainer_field_size(t, dims, res) /= DFX_OK .or. dims /= 2) call fail("field_size")
  allocate(nu(res, res, batch), u(res, res, batch))
  do b = 1, int(batch)
    do y = 1, int(res)
      do x = 1, int(res)
        px = real(x - 1, c_double) / real(res - 1, c_double)
        py = real(y - 1, c_double) / real(res - 1, c_double)
        nu(x, y, b) = 1
        if (b == 1) nu(x, y, b) = 1 + 0.5d0 * sin(2 * pi * px) * cos(2 * pi * py)
      end do
    end do
  end do
  if (dfx_trainer_predict(t, nu, batch, u) /= DFX_OK) call fail("predict")
  ! Finite everywhere, u = 1 on x = 0 and u = 0 on x = 1 (poisson2d's Dirichlet values).
  ok = all(abs(u) <= huge(u)) .and. all(u(1, :, :) == 1) .and. all(u(res, :, :) == 0)
  if (rank == 0) then
    if (ok) then
      write (*, '(a, es14.6)') 'prediction ok: u(mid, mid, 1) = ', u(res / 2 + 1, res / 2 + 1, 1)
    else
      write (*, '(a)') 'prediction WRONG'
    end if
  end if
  call dfx_trainer_free(t)
  call MPI_Finalize(ierr)
  if (.not. ok) error stop 1

contains
  subroutine fail(what)
    character(len=*), intent(in) :: what
    write (0, '(a, i0, 4a)') 'rank ', rank, ': ', what, ' failed: ', last_error()
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end subroutine
end program
